import pytest

from sdweb.generation.img2img_steps import img2img_schedule, schedule_for, steps_run


@pytest.mark.parametrize("wanted", [1, 2, 3, 10, 20, 37, 150])
@pytest.mark.parametrize("strength", [0.0, 0.001, 0.05, 0.3, 0.5, 0.7, 0.75, 0.999, 1.0])
def test_schedule_runs_exactly_the_wanted_steps(wanted, strength):
    schedule, used = schedule_for(wanted, strength)
    assert steps_run(schedule, used) == wanted
    assert schedule == wanted or steps_run(schedule - 1, used) < wanted  # the shortest such schedule
    assert 0 < used <= 1


def test_plain_img2img_keeps_a1111_arithmetic_and_never_runs_zero_steps():
    assert img2img_schedule(20, 0.75, fix_steps=False) == (20, 0.75)  # 15 steps of a 20-step schedule
    schedule, used = img2img_schedule(2, 0.2, fix_steps=False)
    assert steps_run(schedule, used) == 1
    schedule, used = img2img_schedule(20, 0.75, fix_steps=True)
    assert steps_run(schedule, used) == 20


def test_conditioning_plan_seen_from_a_later_iteration():
    from sdweb.generation.conditioning_plan import ConditioningPlan

    a, b, c = ("a", "ua"), ("b", "ub"), ("c", "uc")
    plan = ConditioningPlan(first=a, changes={3: b, 6: c})
    assert plan.from_iteration(0) is plan
    assert plan.from_iteration(2).first == a and plan.from_iteration(2).changes == {1: b, 4: c}
    assert plan.from_iteration(3).first == b and plan.from_iteration(3).changes == {3: c}
    assert plan.from_iteration(7).first == c and plan.from_iteration(7).changes == {}
    composable = ConditioningPlan(first=a, changes={}, weights=[1.0, 0.5], steps={0: "s0", 4: "s4"})
    assert composable.from_iteration(5).steps == {0: "s4"}
    assert composable.from_iteration(2).steps == {0: "s0", 2: "s4"}
