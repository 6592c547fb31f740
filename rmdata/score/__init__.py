"""Scoring: the engine (packed, exact, batch invariant), the resumable sharded writer, and evaluation."""
