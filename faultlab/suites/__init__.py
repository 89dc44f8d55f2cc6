"""Ready-made resilience suites a user points at their own service.

``pytest --pyargs faultlab.suites --faultlab-target mypkg.module:factory``, where
the factory returns a :class:`~faultlab.suites.target.Target`: the service, the
client a user wraps around faultlab's client, and the declared policies.
Without ``--faultlab-target`` the suites run against the bundled calc example.
"""
