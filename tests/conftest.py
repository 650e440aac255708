import os
import sys

# Tests import their shared helpers as ``tests.util``.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TZ", "UTC")
