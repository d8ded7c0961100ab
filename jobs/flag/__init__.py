"""`telco-ra flag`: report a wrong row, with everything needed to see why it came out so and to keep it fixed.

A person who reads a record_outcome row and finds it wrong names it (run, record id, and where needed the control
point, side or record key) and says why. The command

- finds the row (`source.py`): exactly one row of that run, else exit 2 naming what is missing or ambiguous;
- gathers its context (`context.py`): the record and its counterpart as the run read them (the input tables at the
  Delta versions control_run recorded: time travel), the rows the decision depended on (copies sharing an id, the
  other records sharing its counterpart, the lookup rows), and the rule that fired;
- proves that context is enough (`fixture.py`): the rows alone, run through the run's own ruleset by the real run
  path (jobs.run.execute), must give the record the same outcome and rule; if they do not, the context grows by the
  record's matching neighbourhood and is tried again;
- writes a regression fixture under `tests/fixtures/flagged/<fixture-id>/` (the rows as JSON lines with their
  schema, the cycle, the ruleset's name and version, and `expected.yaml` with the outcome, which the person edits to
  the correct one) that tests/test_flagged_fixtures.py runs against `rulesets/<name>.yaml`;
- appends the whole context to the Delta table `flagged_row` under the conf's `output` (`job.py`), in one commit.

Phone numbers are masked in everything it prints; the fixture's rows are input rows as read (see docs/flag.md).
"""
