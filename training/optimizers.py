"""The seed's six update rules as tf_keras optimizers, and `get_optimizer`, the name-to-optimizer factory.

The syllabus ("Fancier optimization" in ``cs231n-notes.md``) writes each optimizer as a few lines of
numpy. The classes here follow those lines exactly, one slot variable per line of state:

============  ===============  ============================================================================
name          class            update (``dx`` the gradient, ``t`` the step counted from 1)
============  ===============  ============================================================================
``sgd``       `SeedSGD`        ``x -= lr * dx``
``momentum``  `SeedMomentum`   ``v = rho * v + dx;  x -= lr * v``
``nesterov``  `SeedNesterov`   ``old_v = v;  v = rho * v - lr * dx;  x += -rho * old_v + (1 + rho) * v``
``adagrad``   `SeedAdaGrad`    ``g2 += dx * dx;  x -= lr * dx / (sqrt(g2) + eps)``
``rmsprop``   `SeedRMSProp`    ``g2 = d * g2 + (1 - d) * dx * dx;  x -= lr * dx / (sqrt(g2) + eps)``
``adam``      `SeedAdam`       ``m, v = moments;  x -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)``
============  ===============  ============================================================================

``sgd``, ``momentum`` and ``adagrad`` run as one TensorFlow kernel per variable
(``ResourceApplyGradientDescent``, ``ResourceApplyMomentum``, ``ResourceApplyAdagradV2``), whose formulas
are the seed's; the other three are written out in TensorFlow ops line by line.

Three slips in the seed's code are fixed, each following the seed's own formula next to it:
plain SGD's and momentum's code *add* the step (``x += learning_rate * dx``, ``x += learning_rate * vx``),
which climbs the loss; here they subtract it, as the formulas ``x_{t+1} = x_t - alpha * ...`` say. Adam's
loop starts at ``t = 0``, which divides by ``1 - beta1**0 = 0``; here ``t`` starts at 1.

How they differ from Keras' built-ins of the same name (reachable as ``keras:<name>``, see `get_optimizer`):
the seed puts ``eps`` outside the square root and starts AdaGrad's sum at 0 (Keras: inside, and 0.1);
the seed's Adam adds ``eps`` to the bias-corrected ``sqrt(v_hat)`` (Keras folds the correction into the
step size, so its ``eps`` is effectively larger early on). Seed momentum and Nesterov equal Keras' ``SGD``
with ``momentum``/``nesterov=True`` at a constant learning rate, but the seed's momentum keeps the raw
gradient sum, so a learning-rate schedule scales the whole velocity at once rather than new gradients only.

The classes are named ``Seed*`` so they never shadow Keras' ``SGD``/``Adam``/``RMSprop`` (the Keras
deserializer matches its built-in names case-insensitively); they are registered as ``zoo>SeedAdam`` etc.

    >>> opt = get_optimizer("momentum", learning_rate=0.1)
    >>> type(opt).__name__, opt.rho
    ('SeedMomentum', 0.9)
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from typing import Any, Mapping

import zoo  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

__all__ = [
    "KERAS_OPTIMIZERS",
    "SEED_OPTIMIZERS",
    "SeedAdaGrad",
    "SeedAdam",
    "SeedMomentum",
    "SeedNesterov",
    "SeedRMSProp",
    "SeedSGD",
    "get_optimizer",
    "list_optimizers",
    "optimizer_class",
]

EPSILON = 1e-7  # the seed's constant in AdaGrad, RMSProp and Adam


def _check_learning_rate(learning_rate: Any) -> Any:
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return learning_rate
    # numbers.Real: a config read back from the optimizer holds a numpy float32.
    if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool) and learning_rate > 0:
        return float(learning_rate)
    raise ValueError(
        "learning_rate must be a positive float or a keras.optimizers.schedules.LearningRateSchedule; "
        f"received {learning_rate!r}"
    )


def _check_fraction(name: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a float in [0, 1); received {value!r}")
    return float(value)


class _SeedOptimizer(keras.optimizers.Optimizer):
    """What the six share: the learning rate, one slot per state variable, dense updates.

    Subclasses list their slots in ``_slots`` and implement ``_apply(dx, x, slots, lr)`` on dense
    tensors of the variable's dtype. ``tf.IndexedSlices`` gradients (from embeddings) are densified
    first: the seed's rules decay every row of the state each step, which a sparse update would skip.
    """

    _slots: tuple[str, ...] = ()

    def __init__(self, learning_rate, *, name: str, **kwargs):
        # kwargs are the base optimizer's options (weight_decay, clipnorm, clipvalue, global_clipnorm,
        # use_ema, ema_momentum, ema_overwrite_frequency, jit_compile); the base raises on anything else.
        # None, not the base class's 0: a zero weight decay still costs an assign per variable per step.
        kwargs.setdefault("weight_decay", None)
        super().__init__(name=name, **kwargs)
        self._learning_rate = self._build_learning_rate(_check_learning_rate(learning_rate))

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        for slot in self._slots:
            # One list attribute per slot (``self._velocity``...), tracked for checkpoints like Keras' own.
            setattr(self, f"_{slot}", [self.add_variable_from_reference(var, slot) for var in var_list])

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        index = self._index_dict[self._var_key(variable)]
        slots = [getattr(self, f"_{slot}")[index] for slot in self._slots]
        self._apply(tf.cast(gradient, dtype), variable, slots, tf.cast(self.learning_rate, dtype))

    def _apply(self, dx, x, slots, lr):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "learning_rate": self._serialize_hyperparameter(self._learning_rate)}


@keras.saving.register_keras_serializable(package="zoo")
class SeedSGD(_SeedOptimizer):
    """Plain stochastic gradient descent, ``x -= learning_rate * dx``.

    The seed's code writes ``x += learning_rate * dx`` (gradient ascent); its formula
    ``x_{t+1} = x_t - alpha * grad f(x_t)`` subtracts, and so does this class.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``; Keras' SGD default (the seed gives none).
        name: the optimizer's name.
        **kwargs: the base optimizer's options: ``weight_decay``, ``clipnorm``, ``clipvalue``,
            ``global_clipnorm``, ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``, ``jit_compile``.

    Example:
        >>> x = tf.Variable([1.0])
        >>> SeedSGD(0.1).minimize(lambda: x * x, [x])
        >>> round(float(x[0]), 6)  # 1 - 0.1 * 2
        0.8
    """

    def __init__(self, learning_rate=0.01, *, name: str = "SeedSGD", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)

    def _apply(self, dx, x, slots, lr):
        # x -= lr * dx in one kernel.
        tf.raw_ops.ResourceApplyGradientDescent(var=x.handle, alpha=lr, delta=dx)


@keras.saving.register_keras_serializable(package="zoo")
class SeedMomentum(_SeedOptimizer):
    """SGD + momentum as the seed writes it: ``v = rho * v + dx; x -= learning_rate * v``.

    The velocity is the decayed sum of raw gradients, scaled by the learning rate only when applied
    (the seed's code adds ``learning_rate * vx``; its formula, and this class, subtract it).

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        rho: the velocity's decay, "0.9 or 0.99" in the seed.
        name: the optimizer's name.
        **kwargs: the base optimizer's options, as in `SeedSGD`.

    Example:
        >>> x = tf.Variable([1.0])
        >>> opt = SeedMomentum(0.1, rho=0.9)
        >>> for _ in range(2): opt.minimize(lambda: x * x, [x])
        >>> round(float(x[0]), 6)  # 0.8, then v = 0.9 * 2 + 1.6 = 3.4: 0.8 - 0.34
        0.46
    """

    _slots = ("velocity",)

    def __init__(self, learning_rate=0.01, *, rho: float = 0.9, name: str = "SeedMomentum", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho = _check_fraction("rho", rho)

    def _apply(self, dx, x, slots, lr):
        (v,) = slots
        # v = rho * v + dx; x -= lr * v in one kernel (TensorFlow's momentum is the seed's formula): one op
        # per variable instead of five, not counting reads.
        tf.raw_ops.ResourceApplyMomentum(var=x.handle, accum=v.handle, lr=lr, grad=dx,
                                         momentum=tf.cast(self.rho, dx.dtype))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho}


@keras.saving.register_keras_serializable(package="zoo")
class SeedNesterov(_SeedOptimizer):
    """Nesterov momentum in the seed's change of variables.

    ``old_v = v; v = rho * v - learning_rate * dx; x += -rho * old_v + (1 + rho) * v``, with the
    gradient taken at ``x`` itself: ``x`` stands for the look-ahead point, which makes the update a
    plain function of the current gradient (the same iterates as Keras' ``SGD(nesterov=True)`` at a
    constant learning rate).

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        rho: the velocity's decay.
        name: the optimizer's name.
        **kwargs: the base optimizer's options, as in `SeedSGD`.

    Example:
        >>> x = tf.Variable([1.0])
        >>> SeedNesterov(0.1).minimize(lambda: x * x, [x])
        >>> round(float(x[0]), 6)  # v = -0.2; x += 1.9 * -0.2
        0.62
    """

    _slots = ("velocity",)

    def __init__(self, learning_rate=0.01, *, rho: float = 0.9, name: str = "SeedNesterov", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho = _check_fraction("rho", rho)

    def _apply(self, dx, x, slots, lr):
        (v,) = slots
        old_v = v.read_value()
        new_v = self.rho * old_v - lr * dx
        v.assign(new_v)
        x.assign_add(-self.rho * old_v + (1 + self.rho) * new_v)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho}


@keras.saving.register_keras_serializable(package="zoo")
class SeedAdaGrad(_SeedOptimizer):
    """AdaGrad: ``grad_squared += dx * dx; x -= learning_rate * dx / (sqrt(grad_squared) + eps)``.

    The sum starts at 0 and ``eps`` sits outside the square root, as in the seed (Keras' ``Adagrad``
    starts at 0.1 and puts it inside).

    Args:
        learning_rate: a float or a ``LearningRateSchedule``; Keras' Adagrad default.
        epsilon: the seed's ``1e-7``.
        name: the optimizer's name.
        **kwargs: the base optimizer's options, as in `SeedSGD`.

    Example:
        >>> x = tf.Variable([3.0])
        >>> SeedAdaGrad(0.5).minimize(lambda: x * x, [x])
        >>> round(float(x[0]), 6)  # the first step moves every coordinate by the learning rate
        2.5
    """

    _slots = ("grad_squared",)

    def __init__(self, learning_rate=0.001, *, epsilon: float = EPSILON, name: str = "SeedAdaGrad", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.epsilon = epsilon

    def _apply(self, dx, x, slots, lr):
        (grad_squared,) = slots
        # grad_squared += dx * dx; x -= lr * dx / (sqrt(grad_squared) + eps), in one kernel.
        tf.raw_ops.ResourceApplyAdagradV2(var=x.handle, accum=grad_squared.handle, lr=lr,
                                          epsilon=tf.cast(self.epsilon, dx.dtype), grad=dx)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="zoo")
class SeedRMSProp(_SeedOptimizer):
    """RMSProp: a leaky AdaGrad, ``grad_squared = decay_rate * grad_squared + (1 - decay_rate) * dx * dx``.

    Then ``x -= learning_rate * dx / (sqrt(grad_squared) + eps)``. The seed's decay rate is 0.99
    (Keras' ``RMSprop`` defaults to ``rho=0.9`` and puts ``eps`` inside the square root).

    Args:
        learning_rate: a float or a ``LearningRateSchedule``; Keras' RMSprop default.
        decay_rate: the decay of the squared-gradient average.
        epsilon: the seed's ``1e-7``.
        name: the optimizer's name.
        **kwargs: the base optimizer's options, as in `SeedSGD`.

    Example:
        >>> x = tf.Variable([3.0])
        >>> SeedRMSProp(0.01).minimize(lambda: x * x, [x])
        >>> round(float(x[0]), 4)  # the first step is learning_rate / sqrt(1 - decay_rate)
        2.9
    """

    _slots = ("grad_squared",)

    def __init__(
        self,
        learning_rate=0.001,
        *,
        decay_rate: float = 0.99,
        epsilon: float = EPSILON,
        name: str = "SeedRMSProp",
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.decay_rate = _check_fraction("decay_rate", decay_rate)
        self.epsilon = epsilon

    def _apply(self, dx, x, slots, lr):
        (grad_squared,) = slots
        grad_squared.assign(self.decay_rate * grad_squared + (1 - self.decay_rate) * dx * dx)
        x.assign_sub(lr * dx / (tf.sqrt(grad_squared) + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "decay_rate": self.decay_rate, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="zoo")
class SeedAdam(_SeedOptimizer):
    """Adam, RMSProp plus momentum with bias correction; the seed's "default first choice".

    ``m = beta1 * m + (1 - beta1) * dx; v = beta2 * v + (1 - beta2) * dx * dx``, then
    ``x -= learning_rate * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)`` with ``t`` the
    step counted from 1 (the seed's loop starts at 0 and would divide by zero).

    Args:
        learning_rate: a float or a ``LearningRateSchedule``; the seed suggests 1e-3 or 5e-4.
        beta1: the first moment's decay.
        beta2: the second moment's decay.
        epsilon: the seed's ``1e-7``, added to the bias-corrected ``sqrt(v)``.
        name: the optimizer's name.
        **kwargs: the base optimizer's options, as in `SeedSGD`.

    Example:
        >>> x = tf.Variable([3.0])
        >>> SeedAdam(0.1).minimize(lambda: x * x, [x])
        >>> round(float(x[0]), 4)  # the first step moves every coordinate by the learning rate
        2.9
    """

    _slots = ("first_moment", "second_moment")

    def __init__(
        self,
        learning_rate=0.001,
        *,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = EPSILON,
        name: str = "SeedAdam",
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta1 = _check_fraction("beta1", beta1)
        self.beta2 = _check_fraction("beta2", beta2)
        self.epsilon = epsilon

    def _apply(self, dx, x, slots, lr):
        first_moment, second_moment = slots
        t = tf.cast(self.iterations + 1, dx.dtype)
        first_moment.assign(self.beta1 * first_moment + (1 - self.beta1) * dx)
        second_moment.assign(self.beta2 * second_moment + (1 - self.beta2) * dx * dx)
        # tf.constant, not tf.cast: casting a Python float goes through float32 and rounds 0.999.
        first_unbias = first_moment / (1 - tf.pow(tf.constant(self.beta1, dx.dtype), t))
        second_unbias = second_moment / (1 - tf.pow(tf.constant(self.beta2, dx.dtype), t))
        x.assign_sub(lr * first_unbias / (tf.sqrt(second_unbias) + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon}


# -- the factory ------------------------------------------------------------------------------------

SEED_OPTIMIZERS: Mapping[str, type] = {
    "sgd": SeedSGD,
    "momentum": SeedMomentum,
    "nesterov": SeedNesterov,
    "adagrad": SeedAdaGrad,
    "rmsprop": SeedRMSProp,
    "adam": SeedAdam,
}

KERAS_OPTIMIZERS: Mapping[str, type] = {
    cls.__name__.lower(): cls
    for cls in (
        keras.optimizers.Adadelta,
        keras.optimizers.Adafactor,
        keras.optimizers.Adagrad,
        keras.optimizers.Adam,
        keras.optimizers.AdamW,
        keras.optimizers.Adamax,
        keras.optimizers.Ftrl,
        keras.optimizers.Lion,
        keras.optimizers.Nadam,
        keras.optimizers.RMSprop,
        keras.optimizers.SGD,
    )
}

KERAS_PREFIX = "keras:"


def list_optimizers() -> list[str]:
    """Every name `get_optimizer` accepts.

    The seed's six by their plain names; every Keras built-in as ``keras:<name>``; and Keras built-ins
    whose name the seed does not use (``adamw``, ``nadam``...) also without the prefix.

    Example:
        >>> list_optimizers()[:6]
        ['sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam']
        >>> "keras:sgd" in list_optimizers() and "adamw" in list_optimizers()
        True
    """
    unprefixed = [n for n in KERAS_OPTIMIZERS if n not in SEED_OPTIMIZERS]
    return [*SEED_OPTIMIZERS, *unprefixed, *(KERAS_PREFIX + n for n in KERAS_OPTIMIZERS)]


def optimizer_class(name: str) -> type:
    """The optimizer class a name of `list_optimizers` stands for.

    Raises:
        ValueError: an unknown name (the message lists the accepted ones and close matches).

    Example:
        >>> optimizer_class("adam").__name__
        'SeedAdam'
    """
    key = name.strip().lower()
    if key.startswith(KERAS_PREFIX) and key[len(KERAS_PREFIX):] in KERAS_OPTIMIZERS:
        return KERAS_OPTIMIZERS[key[len(KERAS_PREFIX):]]
    if key in SEED_OPTIMIZERS:
        return SEED_OPTIMIZERS[key]
    if key in KERAS_OPTIMIZERS:
        return KERAS_OPTIMIZERS[key]
    names = list_optimizers()
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise ValueError(f"unknown optimizer {name!r}. Accepted: {', '.join(names)}.{hint}")


def _accepted_arguments(cls: type) -> list[str]:
    names = []
    for klass in (cls, keras.optimizers.Optimizer):
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                names.append(p.name)
    return names


def get_optimizer(
    name_or_config: str | Mapping[str, Any] | keras.optimizers.Optimizer,
    *,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
    **kwargs: Any,
) -> keras.optimizers.Optimizer:
    """Makes an optimizer from a name, a serialized config, or passes an instance through.

    Names (case-insensitive; see `list_optimizers`): the seed's ``sgd``, ``momentum``, ``nesterov``,
    ``adagrad``, ``rmsprop``, ``adam`` give `SeedSGD`... `SeedAdam`; ``keras:<name>`` gives Keras'
    built-in (``keras:sgd`` is ``keras.optimizers.SGD``, ``keras:adam`` Keras' Adam); Keras names the
    seed does not use (``adamw``, ``adadelta``, ``adafactor``, ``adamax``, ``ftrl``, ``lion``, ``nadam``)
    work without the prefix too.

    Args:
        name_or_config: a name, a dict from ``keras.optimizers.serialize`` (``{"class_name", "config"}``),
            or an optimizer instance (returned as is; then no other argument may be given).
        learning_rate: a positive float or a ``LearningRateSchedule``; ``None`` keeps the optimizer's
            default (or the config's value).
        **kwargs: the optimizer's own arguments (``rho``, ``beta1``, ``weight_decay``, ``clipnorm``...);
            they override a config's values. Unknown ones raise, listing the accepted ones.

    Returns:
        A new, unbuilt ``keras.optimizers.Optimizer``.

    Raises:
        ValueError: an unknown name, a bad learning rate or config, or an argument the optimizer does not take.

    Example:
        >>> get_optimizer("adam", learning_rate=5e-4).get_config()["learning_rate"]
        0.0005
        >>> type(get_optimizer("keras:sgd", learning_rate=0.1, momentum=0.9)).__name__
        'SGD'
    """
    if learning_rate is not None:
        learning_rate = _check_learning_rate(learning_rate)
    if isinstance(name_or_config, keras.optimizers.Optimizer):
        if learning_rate is not None or kwargs:
            raise ValueError(
                "an optimizer instance is used as is; received learning_rate/arguments "
                f"{sorted(kwargs) + (['learning_rate'] if learning_rate is not None else [])} with it. "
                "Pass a name or a config to set them."
            )
        return name_or_config
    overrides = {**kwargs, **({"learning_rate": learning_rate} if learning_rate is not None else {})}
    if isinstance(name_or_config, Mapping):
        if not {"class_name", "config"} <= set(name_or_config):
            raise ValueError(
                "an optimizer config must be a dict from keras.optimizers.serialize with 'class_name' and "
                f"'config'; received keys {sorted(name_or_config)}"
            )
        config = {**name_or_config, "config": {**name_or_config["config"], **overrides}}
        try:
            return keras.optimizers.deserialize(config)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot build an optimizer from config {config!r}: {err}") from err
    if not isinstance(name_or_config, str):
        raise ValueError(
            "name_or_config must be an optimizer name, a dict from keras.optimizers.serialize or an "
            f"optimizer instance; received {name_or_config!r}. Names: {', '.join(list_optimizers())}"
        )
    try:
        cls = optimizer_class(name_or_config)
    except ValueError as err:
        raise ValueError(f"{err} Received name_or_config={name_or_config!r}; also accepted: a dict from "
                         "keras.optimizers.serialize, or an optimizer instance") from None
    accepted = _accepted_arguments(cls)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"optimizer {name_or_config!r} ({cls.__name__}) does not take {', '.join(unknown)}. "
            f"Accepted: {', '.join(accepted)}"
        )
    return cls(**overrides)
