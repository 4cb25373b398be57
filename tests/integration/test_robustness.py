"""The robustness category on the real Debian servers: every scenario ran on every target with
no error cell, every pass rests on the steps that check the rule (the answer to the bad input and
the server still serving), and the measurements (how many held connections) are recorded."""

from __future__ import annotations

from tests.integration.conftest import LOCAL_TARGETS, error_cells, missing_items

MIN_SCENARIOS = 12  # the floor for the category


def test_the_category_has_its_scenarios(robust_scenarios):
    assert len(robust_scenarios) >= MIN_SCENARIOS
    assert all(s.spec_ref for s in robust_scenarios)


def test_every_robustness_scenario_ran_on_every_target(robust_run, robust_scenarios):
    assert missing_items(robust_run, robust_scenarios) == []


def test_no_error_cells(robust_run):
    assert error_cells(robust_run) == []


def test_a_pass_rests_on_the_answer_and_on_serving_afterwards(robust_run, robust_scenarios):
    """Every pass recorded what each decisive step saw, and the bad-input scenarios decide on
    more than one step: the answer to the input, then a round trip after it."""
    decisive = {s.id: sum(1 for step in s.steps if step.decisive) for s in robust_scenarios}
    passes = [i for i in robust_run.run.items if i.outcome == "pass"]
    assert passes
    for item in passes:
        assert len(item.decided_by) == decisive[item.scenario_id], item.item_id
        assert all(d["observed"] for d in item.decided_by), item.item_id


def test_the_held_connections_are_measured(robust_run):
    items = [i for i in robust_run.run.items if i.scenario_id == "robust.stream.many-connections"]
    assert len(items) == len(LOCAL_TARGETS)
    for item in items:
        if item.outcome == "pass":  # the count is the first decisive step's observation
            assert "of 40 connections from 127." in item.decided_by[0]["observed"], item.item_id
