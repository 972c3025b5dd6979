"""The console's panels, one per file; each shows a part of an EngineSnapshot and keeps its own cursor."""
