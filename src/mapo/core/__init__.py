"""The pure core of MAPO: advantage estimators (``advantages``), policy losses (``losses``) and their
helpers. Imports only torch, numpy and the standard library; no models, no I/O."""
