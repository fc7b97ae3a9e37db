"""Review in the browser (``synapflow review-ui``): the least confident events of an animal, one key each.

The page shows each event's place in both sessions side by side (:mod:`.session` renders the pictures once),
with its reason and confidence; keys decide present, eliminated, new (and out of view, not a spine), skip,
undo and finish. Each decision goes to the ``corrections`` table at once, with who and when; undo deletes
it. The dynamics are recomputed through Dagster (the command's ``recompute``) when the person finishes
(key F) and, by the command, when the server stops with decisions not yet recomputed. No Dagster here.
"""

from .server import make_app, make_server
from .session import ReviewSession, load_session

__all__ = ["ReviewSession", "load_session", "make_app", "make_server"]
