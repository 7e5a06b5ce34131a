"""A batch travels the job path as one frozen BatchPlan, not as a dozen loose parameters."""

import dataclasses
import inspect

import pytest

from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.batch_plan import BatchPlan
from sdweb.generation.hires import second_pass
from sdweb.generation.runner import run_batch
from sdweb.generation.service import GenerationService
from sdweb.samplers.resolve import resolve_sampler


def _plan() -> BatchPlan:
    request = Txt2ImgRequest(prompt="a cat", steps=2, width=64, height=64)
    resolution = resolve_sampler("Euler", "Automatic", strict=True)
    return BatchPlan("txt2img", request, model=None, prepared=None, resolution=resolution,  # type: ignore[arg-type]
                     seeds=(1, 2), subseeds=(3, 4), settings={})


def test_a_batch_plan_is_frozen():
    plan = _plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.seeds = (5, 6)  # type: ignore[misc]
    assert dataclasses.replace(plan, seeds=(5, 6)).seeds == (5, 6) and plan.seeds == (1, 2)


@pytest.mark.parametrize("function", [run_batch, second_pass, GenerationService._run_batch_guarded,
                                      GenerationService._collect])
def test_the_job_path_takes_the_plan_whole(function):
    parameters = inspect.signature(function).parameters
    assert parameters["batch"].annotation in (BatchPlan, "BatchPlan")
    loose = {"mode", "request", "model", "prepared", "resolution", "seeds", "subseeds", "settings"}
    assert not loose & set(parameters), f"{function.__qualname__} still takes {sorted(loose & set(parameters))}"
    assert len(parameters) <= 8


def test_the_hires_pass_refuses_a_request_without_hires_fields():
    from sdweb.core.requests import Img2ImgRequest

    plan = dataclasses.replace(_plan(), mode="img2img", request=Img2ImgRequest.model_construct(prompt="a cat"))
    with pytest.raises(TypeError, match="Img2ImgRequest"):
        second_pass(plan, noise=None, first_latents=None, context=None)  # type: ignore[arg-type]
