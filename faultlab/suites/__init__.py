"""Ready-made resilience suites a user points at their own service.

``pytest --pyargs faultlab.suites --faultlab-target mypkg.module:factory``, where
the factory returns a :class:`~faultlab.suites.target.Target`: the service (served by
faultlab, or a black box: a ``faultlab.Command``, ``Address`` or ``Image``), the user's
resilient client, and the declared policies.
Without ``--faultlab-target`` the suites run against the bundled calc example.
"""
