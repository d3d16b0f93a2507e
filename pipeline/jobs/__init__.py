"""Jobs: long and periodic work through a durable queue (Huey on the database's own kind).

``queue`` builds the queue; ``record`` keeps each job's record and lease; ``identity`` says
who holds a job; ``bulk`` and ``tasks`` are what jobs do; ``passes`` are the periodic passes,
once per slot across every consumer; ``recovery`` brings stalled jobs back; ``runner`` is a
consumer, in ``countersign worker`` or inside ``countersign serve``.
"""
