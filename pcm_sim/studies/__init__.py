"""Studies at scale: sweeps, robustness studies and pre-silicon validation reports.

* :mod:`~pcm_sim.studies.sweep_file` -- the sweep file format and its checks;
* :mod:`~pcm_sim.studies.cells` -- resolved models, a cell's configuration and key, running cells;
* :mod:`~pcm_sim.studies.sweep` -- running a sweep (resumable, stale cells recomputed), status;
* :mod:`~pcm_sim.studies.store` -- the SQLite result database (one row per cell);
* :mod:`~pcm_sim.studies.executors` -- local process pool or Dask distributed cluster;
* :mod:`~pcm_sim.studies.plots` -- figures and CSV export of a database;
* :mod:`~pcm_sim.studies.validation_spec` -- validation specs and their checks;
* :mod:`~pcm_sim.studies.validate` -- pre-silicon validation: running and judging a spec;
* :mod:`~pcm_sim.studies.validate_report` -- the report files (Markdown, JSON, figure);
* :mod:`~pcm_sim.studies.outputs` -- atomic output files and output-path checks.
"""
