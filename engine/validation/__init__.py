"""Behaviour validation: a paper session's decisions against its twin backtest's, scored and explained."""
