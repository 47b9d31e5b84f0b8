"""Phase 1, collection: run dialectics (one, a batch, on Ray, or played step by step by an agent) and log their traces;
judge them; optimize the program."""
