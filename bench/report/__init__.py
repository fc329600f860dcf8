"""Reports of a run: ``junit.xml`` (:mod:`bench.report.junit`), ``report.html``
(:mod:`bench.report.html`), built from the run directory's ``summary.json`` and signals."""
