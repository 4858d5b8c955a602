"""The library calls, one per command (``kvsize.size``, ``check``, ``capacity``, ``probe``, ``compare_engines``), and
the argument groups they take (``args``). Each call parses nothing: it takes typed arguments, asks the model
sources, the engine and the time model, and returns one pydantic result (``kvsize.results``)."""
