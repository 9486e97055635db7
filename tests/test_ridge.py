"""The ridge fit of the skip path, and the linear candidate it gives regression on tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeCV

from conftest import tiny_config
from dlpipe.baseline import _design
from dlpipe.evaluate import predict_outputs, to_tensors
from dlpipe.model import Head, Net
from dlpipe.pipeline import Pipeline
from dlpipe.ridge import ALPHAS, fit_ridge
from dlpipe.train import fit_network


@pytest.mark.parametrize("rows", [12, 60, 400])
def test_fit_ridge_is_ridgecv(rows):
    rng = np.random.default_rng(rows)
    x = np.hstack([rng.normal(size=(rows, 20)), np.zeros((rows, 1))])  # a missing flag never set
    y = x[:, :3] @ [1.0, -2.0, 0.5] + rng.normal(size=rows)
    fit = fit_ridge(x, y)
    reference = RidgeCV(alphas=np.array(ALPHAS)).fit(x, y)
    assert fit.alpha == reference.alpha_
    assert fit.loo_mse == pytest.approx(-reference.best_score_, rel=1e-9)
    np.testing.assert_allclose(fit.coef[:, 0], reference.coef_, atol=1e-9)
    np.testing.assert_allclose(fit.predict(x)[:, 0], reference.predict(x), atol=1e-9)


@pytest.fixture(scope="module")
def diabetes():
    return Pipeline.from_dict(tiny_config("diabetes", "regression")).prepare()


def test_linear_state_predicts_what_ridgecv_fitted_on_the_training_split_does(diabetes):
    net = Net(diabetes.preprocessor, diabetes.spec.model)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train = diabetes.splits["train"]
    state = net.linear_state(to_tensors(train.inputs), torch.as_tensor(train.y, dtype=torch.float32))
    for key, value in net.state_dict().items():  # the network itself is untouched
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    net.load_state_dict(state)
    reference = RidgeCV(alphas=np.array(ALPHAS)).fit(_design(train.inputs, None), train.y)
    for split in ("train", "test"):
        inputs = diabetes.splits[split].inputs
        predicted = predict_outputs(net, Head("regression"), to_tensors(inputs))
        np.testing.assert_allclose(predicted, reference.predict(_design(inputs, None)), atol=1e-5)


def test_no_linear_state_for_classification():
    prepared = Pipeline.from_dict(tiny_config()).prepare()  # three classes: three outputs
    net = Net(prepared.preprocessor, prepared.spec.model)
    train = prepared.splits["train"]
    assert net.linear_state(to_tensors(train.inputs), torch.as_tensor(train.y)) is None


def test_the_linear_candidate_is_kept_when_it_validates_better(tmp_path):
    # a network that barely trains: the ridge validates better, and the run reports it as epoch 0
    config = tiny_config("diabetes", "regression", training={"epochs": 2, "learning_rate": 1e-6})
    result = Pipeline.from_dict(config).run(tmp_path)
    assert result.metrics["best_epoch"] == 0
    assert result.metrics["test"]["r2"] == pytest.approx(result.metrics["baseline"]["test"]["r2"], abs=2e-6)
    off = Pipeline.from_dict({**config, "model": {**config["model"], "linear_candidate": False}}).run(tmp_path)
    assert off.metrics["best_epoch"] == 2 and off.metrics["test"]["r2"] < result.metrics["test"]["r2"]


def test_a_refit_of_zero_epochs_is_the_ridge_on_train_and_validation(diabetes):
    net, head, state = fit_network(diabetes, refit_epochs=0)
    assert state.epoch == 0 and state.best_epoch == -1
    train, validation = diabetes.splits["train"], diabetes.splits["validation"]
    both = {k: np.concatenate([v, validation.inputs[k]]) for k, v in train.inputs.items()}
    reference = RidgeCV(alphas=np.array(ALPHAS)).fit(_design(both, None), np.concatenate([train.y, validation.y]))
    test = diabetes.splits["test"].inputs
    np.testing.assert_allclose(
        predict_outputs(net, head, to_tensors(test)), reference.predict(_design(test, None)), atol=1e-5
    )
