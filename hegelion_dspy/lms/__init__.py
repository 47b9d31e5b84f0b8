"""LM backends, arrows one way: ``chooser`` (``make_lm``) on top; ``scripted``, ``embedded`` and ``sampling`` below it;
``adapters`` and ``base`` (``MessagesLM``, the step recorder) at the bottom."""
