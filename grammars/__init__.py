"""Ready-made grammars shipped with structgen (installed as ``structgen.grammars``)."""
