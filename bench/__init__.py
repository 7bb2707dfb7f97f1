"""CherryChat's benchmark harness: CherryChat against Nchan, python-socketio and SockJS.

``python -m bench --help`` from the repository root. The load generator is Node
(``bench/loadgen/``), pinned to one core; the server under test is pinned to the other.
"""
