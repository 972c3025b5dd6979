"""The confirm modal's answers (y, Enter, n, Escape) over [console.keys]: a trading key remapped onto one of them must
not take the operator's answer, and the emergency stop's question names the key that confirms it."""

from __future__ import annotations

import pytest

from console.app import check_keys
from console.screens.confirm import ConfirmScreen
from engine.config import ConfigError
from tests.console.test_app import console_over_session, own_config_home, wait_until
from tests.console.test_console_keys import calm_config, state_of

__all__ = ["own_config_home"]


def test_a_trading_key_remapped_onto_an_answer_of_the_confirm_modal_is_refused():
    with pytest.raises(ConfigError, match=r"\[console.keys\] quit = 'escape'.*confirm"):
        check_keys({"quit": "escape"})
    with pytest.raises(ConfigError, match=r"\[console.keys\] resume = 'n,y'.*confirm"):
        check_keys({"resume": "n,y"})
    check_keys({"quit": "ctrl+q", "detail": "enter"})  # not a priority key: the modal keeps its own


async def test_the_emergency_stop_question_names_the_remapped_key(tmp_path):
    config = calm_config(console={"keys": {"emergency-stop": "ctrl+e"}})
    async with console_over_session(config, tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Pressing ^e again also confirms" in app.screen.question, app.screen.question
        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: state_of(session) == "EMERGENCY_STOPPED")
