"""The generator's version, apart from the printers and the cache (which both need it), so
that neither imports the other for it."""

#: Bump when the generated code changes meaning or shape (part of every build key, written in
#: every generated module and manifest).  2: the fixed algorithms (root search, min-plus
#: dynamic programming, banded solve, path-saddle continuation) are imported from
#: ``netderive.codegen.algorithms`` instead of printed into each module.
GENERATOR_VERSION = "2"
