"""Runs the tutorial's chat.py, unchanged, on the ports a test chose (Python 2.7 or 3).

    python run_app.py APP_PORT ORBIT_PORT path/to/chat.py

The tutorial hard-codes CherryPy's port 4700 (CherryChat's default, too) and pyorbited's
default, localhost:9000. This runner makes ``cherrypy.config.update`` put the test's port
(on 127.0.0.1) in place of 4700, and the Orbit client's default port the test's, then runs
chat.py as ``__main__``: the file itself is exactly the tutorial's.
"""
import runpy
import sys

app_port, orbit_port, chat_py = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

try:
    import pyorbited.simple as orbit_client
except ImportError:  # Python 3: chat.py imports cherrychat.pyorbited instead
    import cherrychat.pyorbited.simple as orbit_client
init = orbit_client.Client.__init__
init = getattr(init, "__func__", init)
init.__defaults__ = ("localhost", orbit_port) + tuple(init.__defaults__[2:])

import cherrypy  # noqa: E402

update = cherrypy.config.update


def on_test_ports(config=None, **kwargs):
    if isinstance(config, dict) and "server.socket_port" in config:
        config = dict(config)
        config["server.socket_port"] = app_port
        config["server.socket_host"] = "127.0.0.1"
    return update(config, **kwargs)


cherrypy.config.update = on_test_ports
sys.argv = [chat_py]
runpy.run_path(chat_py, run_name="__main__")
