"""What the client and the built-in ``sampler`` and ``estimator`` programs share.

The client checks options and PUBs before it sends a job, and the server and its
workers check them again when the job arrives: both sides import these modules,
so the same rules apply on each, and the client never imports server-side code.

- :mod:`qruntime.primitives.options`: the programs' options (IBM's names), checked
  and resolved to :class:`~qruntime.primitives.options.PrimitiveOptions`.
- :mod:`qruntime.primitives.pubs`: PUBs coerced by Qiskit's rules and checked,
  with errors that say which PUB is wrong.

Nothing here imports Aer or the server.
"""
