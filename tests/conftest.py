"""One local SparkSession for the whole suite, tuned for tiny data, with Delta tables in temp dirs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from jobs.session import build_session


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = build_session(
        {
            "master": "local[2]",
            "settings": {
                "spark.sql.shuffle.partitions": 2,
                "spark.default.parallelism": 2,
                "spark.sql.warehouse.dir": str(warehouse),
                "spark.driver.memory": "2g",
                "spark.databricks.delta.snapshotPartitions": 1,
            },
        },
        app_name="telco-ra-tests",
    )
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _clean_catalog(request: pytest.FixtureRequest) -> Iterator[None]:
    """Drop cached data and temp views between tests so one test never sees another's state."""
    yield
    if "spark" in request.fixturenames:
        session = request.getfixturevalue("spark")
        session.catalog.clearCache()
        for view in session.catalog.listTables():
            if view.isTemporary:
                session.catalog.dropTempView(view.name)
