"""`python -m cargobay.metadata.migrations "message"`: write the next revision (developers)."""

import sys

from cargobay.metadata.migrations import new_revision

if len(sys.argv) != 2:
    sys.exit('usage: python -m cargobay.metadata.migrations "what the revision does"')
print(new_revision(sys.argv[1]))
