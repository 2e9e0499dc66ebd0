"""Every scheduling decision, made by the pure `planner.plan(snapshot, now)`.

`snapshot` is the bounded view of the store a round decides on, and the plan it returns;
`dependencies` moves waiting jobs on, `ordering` gives the order queues and jobs are considered
in (FIFO or fair share, also GetJobQueueSnapshot's), and `fairshare` the decay, weight and
reservation arithmetic. No I/O, no clock, no randomness: the same snapshot and time give the
same plan, in the server, the unit tests and the simulator alike.
"""
