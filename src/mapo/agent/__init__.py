"""The thinking-with-images agent: ``protocol`` (prompts, tool schema), ``parser`` (turn -> call | answer |
error), ``zoom`` (the crop tool), ``trajectory`` (the rollout record) and ``rollout`` (the batched engine)."""
