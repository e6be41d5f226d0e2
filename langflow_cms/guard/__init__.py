"""The guard: a new flow version that is slower or fails more than the one before is rolled back.

One concern per module (arrows point down):

* :mod:`~langflow_cms.guard.rule`: the decision rule, pure functions of the evidence (unit-tested alone);
* :mod:`~langflow_cms.guard.spec`: the ``[guard]`` section of the monitoring TOML;
* :mod:`~langflow_cms.guard.evidence`: both versions' runs, error rates and P95s read from CMS's fleet stream
  (through :mod:`langflow_cms.ops.readback` and :func:`langflow_cms.ops.compare.interval`);
* :mod:`~langflow_cms.guard.langflow`: the Langflow flow-versions API (list, activate), with retries;
* :mod:`~langflow_cms.guard.service`: one evaluation of every watched flow, its state, events and log lines.

docs/guard.md explains the rule and its measured false-rollback rate.
"""
