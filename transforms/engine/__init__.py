"""The control engine: compiles any control point a ruleset declares into DataFrame steps.

spec (what a ruleset declares) -> prepare (inputs to sides: scope, identity, phones, quarantine) -> match (stages:
duplicates, exact, fuzzy) -> lookups + decide (ordered rules in Spark SQL) -> aggregate (group variances) ->
reports. Conservation, cases, lifecycle, outputs and governance are shared by every control point (jobs/run.py).
Nothing here names a control point, an outcome or an input table: the ruleset does.
"""
