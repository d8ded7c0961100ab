"""Synthetic months with planted faults and the ground truth the controls must reproduce: one module per ruleset's
data.

- `usage_to_bill`: cdr, rated_event, bill_charge (USAGE), suspense and tariff for the usage-to-bill ruleset.
- `inventory_to_bill`: product_inventory and bill_charge (RECURRING) for the inventory-to-bill control point.
- `common`: what both share: deterministic hash draws, the money type, the ground-truth schema and small column
  helpers.

Why a package of its own (not `transforms/`): a generator is not a control's transform; it writes test and demo
data, and only `jobs.generate`, `jobs.demo`, the tests and the benchmarks use it.
"""
