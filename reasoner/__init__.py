"""b12kg: the vitamin B12 deficiency neuropathy guideline as a knowledge graph, and its reasoner."""
from .api import Report, recommend, recommend_text
from .errors import B12kgError, InputError

__version__ = "0.1.0"
__all__ = ["recommend", "recommend_text", "Report", "B12kgError", "InputError", "__version__"]
