"""Elastic's csv-spec conformance cases: parse spec files, load their data sets, run and compare."""
