"""Provider keys come from the environment or a file, and go nowhere but to the provider."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from casework.agents.llm import LlmActivities
from casework.agents.messages import AgentRequest
from casework.config import Settings, SettingsError
from casework.testing.scripted_llm import SCRIPTED_MODEL, ScriptedReply, scripted_llm_server
from tests.test_llm_activity import APPROVE, Verdict  # noqa: F401 - registers test.verdict

KEY = "sk-test-5ecret-never-logged"


def test_a_key_is_read_from_a_file_and_never_printed(tmp_path: Path) -> None:
    key_file = tmp_path / "llm-key"
    key_file.write_text(KEY + "\n")
    settings = Settings.from_env({"CASEWORK_LLM_API_KEY_FILE": str(key_file)})
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == KEY
    assert KEY not in repr(settings) and KEY not in settings.model_dump_json()


def test_a_missing_key_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"CASEWORK_LLM_API_KEY_FILE names .*missing"):
        Settings.from_env({"CASEWORK_LLM_API_KEY_FILE": str(tmp_path / "missing")})


async def test_the_key_reaches_the_provider_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with scripted_llm_server() as server:
        server.enqueue(ScriptedReply(content=APPROVE))
        settings = Settings(
            model=SCRIPTED_MODEL, llm_api_base=server.base_url, llm_api_key=KEY, state_dir=tmp_path
        )
        request = AgentRequest(
            agent="invoice_analyst",
            output="test.verdict",
            system_prompt="Review.",
            task="Decide.",
            context={"invoice": "INV-1"},
        )
        result = await ActivityEnvironment().run(LlmActivities(settings).propose, request)

    assert server.authorizations == [f"Bearer {KEY}"]
    assert KEY not in json.dumps(server.requests)
    assert KEY not in result.model_dump_json()
    assert KEY not in caplog.text


def test_a_bad_worker_cache_size_names_the_variable() -> None:
    sized = Settings.from_env({"CASEWORK_MAX_CACHED_WORKFLOWS": "11000"})
    assert sized.max_cached_workflows == 11000
    with pytest.raises(SettingsError, match="CASEWORK_MAX_CACHED_WORKFLOWS must be a positive"):
        Settings.from_env({"CASEWORK_MAX_CACHED_WORKFLOWS": "lots"})
