"""Deterministic simulation tests of the live engine.

The engine runs single-threaded (``start(threaded=False)`` + ``pump()``) against
in-memory fakes of its ports — ``SimBroker`` (an OpenAlgo-like account),
``SimFeed``, ``MemoryStore`` — and a ``StepExecutor`` that runs broker work only
when the harness says, on a ``ManualClock``.  Everything random comes from one
``random.Random(seed)``, so a seed replays a run bit for bit:

    python -m tests.simulation --seed 123 --steps 400 --profile faults -v

``harness.Simulation`` generates trades, prices, commands and faults and checks
the invariants in ``invariants`` after every step; ``scenarios`` holds short
fixed scripts for defects the random runs found.
"""
