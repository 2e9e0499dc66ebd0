"""The process runtime: attempts as local process groups.

`runtime` holds ProcessRuntime; `launcher` the program that spawns and reaps attempts in an
interpreter of its own that outlives the server, `launcher_client` the server's end of its
pipes; `launch_records` what the launcher records beside each attempt (how a restart finds it);
`containment` the cgroup or reaper that ends whatever an attempt started; `proc` what the
runtime reads in /proc. Imports nothing itself: the launcher imports this package, and must
start quickly. Only `server.py` imports the runtime.
"""
