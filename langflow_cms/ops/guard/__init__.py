"""The guard: a new flow version that is slower or fails more than the one before is rolled back.

One concern per module (arrows point down):

* :mod:`.rule`: the decision rule, pure functions of the evidence (unit-tested alone);
* :mod:`.spec`: the ``[guard]`` section of the monitoring TOML;
* :mod:`.evidence`: both versions' runs, error rates and P95s read from CMS's fleet stream
  (through :mod:`langflow_cms.ops.readback` and :func:`langflow_cms.ops.compare.interval`);
* :mod:`.langflow`: the Langflow flow-versions API (list, activate), with retries;
* :mod:`.service`: one evaluation of every watched flow, its state, events and log lines.

docs/guard.md explains the rule and its measured false-rollback rate.
"""
