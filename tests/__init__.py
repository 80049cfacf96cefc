"""mpsim test suite.

A regular package: avalanche-lib installs a top-level ``tests`` package that would shadow a namespace one.
"""
