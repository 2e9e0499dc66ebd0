"""Where attempts run, behind the `Runtime` protocol of `base`: start, stop, recover, report.

`process` runs an attempt as a local process group (the default), `docker` as a container run
the way ECS runs a Batch job, and `fake` in virtual time for scheduler tests and the simulator.
A runtime decides nothing: it launches what the dispatcher asks, reports starts and exits, and
streams output into the log store. Only `server.py` names the concrete runtimes.
"""
