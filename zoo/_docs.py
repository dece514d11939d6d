"""Readable views of the registry: human-unit counts, the model table, model cards, docs/models.md and
docs/pretrained.md.

Every function returns text and is deterministic (sorted input, no timestamps or versions), so
``docs/models.md`` can be compared with a fresh rendering (``zoo docs --out docs/models.md --check``),
and so can ``docs/pretrained.md`` (``zoo docs --page pretrained --out docs/pretrained.md --check``).
The command line (`zoo.cli`) only prints what these return.

    >>> from zoo._docs import human_count
    >>> human_count(11_699_112), human_count(1_818_558_976)
    ('11.7M', '1.82G')
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Iterator, Literal, Sequence

from zoo._registry import ModelInfo, get_spec, list_families, list_models, model_info

__all__ = [
    "format_shape",
    "human_count",
    "model_card",
    "models_markdown",
    "models_table",
    "pretrained_markdown",
    "pretrained_table",
]

GENERATE_COMMAND = "make docs"


def human_count(n: int) -> str:
    """A count in three significant digits with an SI suffix (K, M, G, T).

    Example:
        >>> human_count(272_474), human_count(138_357_544), human_count(999_999), human_count(64)
        ('272K', '138M', '1M', '64')
    """
    if n < 1000:
        return str(n)
    for power, suffix in enumerate("KMGT", start=1):
        text = f"{n / 1000**power:.3g}"
        if float(text) < 1000 or suffix == "T":  # 999,999 rounds to "1e+03" K: carry to the next unit
            return text + suffix
    raise AssertionError("unreachable")


def format_shape(shape: Sequence[int]) -> str:
    """``(224, 224, 3)`` as ``"224x224x3"``.

    Example:
        >>> format_shape((28, 28, 1))
        '28x28x1'
    """
    return "x".join(str(d) for d in shape)


def _published_text(name: str) -> tuple[str, str, str]:
    """(published count, its source, match mark) for a variant at its default input."""
    published = get_spec(name).published
    if published is None:
        return "", "", "—"
    if published.decimals is None:
        count = f"{published.params:,}"
    else:
        count = f"{published.params / 1e6:.{published.decimals}f}M"
    mark = "✓" if published.matches(model_info(name).trainable_params) else "✗"
    return count, published.source, mark


# -- the terminal table (`zoo list`) ----------------------------------------------------------------

COUNT_WIDTH = 5  # human_count never needs more: "11.7M", "999K", "1.82G"


def models_table(names: Sequence[str]) -> Iterator[str]:
    """Lines of a plain-text table of models at their default input (header first).

    Columns: name, family, params, MACs, FLOPs, default input, paper year. The counts are
    `model_info`'s at the variant's defaults, read from the card table shipped in the package
    (``zoo/_cards.json``, measured by ``make docs``), so no model is built; the column widths come from
    the registry, so callers can print each line as it comes.

    Example:
        >>> print("\\n".join(models_table(["resnet18"])))  # doctest: +NORMALIZE_WHITESPACE
        name      family  params   MACs  FLOPs  input      year
        resnet18  resnet   11.7M  1.81G  3.63G  224x224x3  2015
    """
    specs = [get_spec(name) for name in names]
    headers = ["name", "family", "params", "MACs", "FLOPs", "input", "year"]
    widths = [
        max([len(headers[0]), *(len(s.name) for s in specs)]),
        max([len(headers[1]), *(len(s.family.name) for s in specs)]),
        *(max(len(h), COUNT_WIDTH) for h in headers[2:5]),
        max([len(headers[5]), *(len(format_shape(s.default_input_shape)) for s in specs)]),
        len(headers[6]),
    ]
    right = [False, False, True, True, True, False, False]

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    yield line(headers)
    for spec in specs:
        info = model_info(spec.name)
        yield line(
            [
                info.name,
                info.family,
                human_count(info.params),
                human_count(info.macs),
                human_count(info.flops),
                format_shape(info.input_shape),
                str(info.year),
            ]
        )


def pretrained_table(names: Sequence[str]) -> list[str]:
    """Lines of a plain-text table of pretrained weights, each as the architecture it was trained as.

    A variant's pretrained weights may use other options than the variant (a narrower
    ``resnext29_8x64d``), so the counts are the weights' own, from their metadata. Columns: weights
    (``arch.tag``), params, FLOPs, input, test top-1, architecture options.

    Example:
        >>> print("\\n".join(pretrained_table(["resnet20.fashion_mnist"])))  # doctest: +NORMALIZE_WHITESPACE
        weights                 params  FLOPs  input     top-1  options
        resnet20.fashion_mnist    271K  61.6M  28x28x1  92.61%  the variant's defaults
    """
    from zoo._weights import get_weights_info

    rows = [["weights", "params", "FLOPs", "input", "top-1", "options"]]
    for meta in map(get_weights_info, names):
        rows.append([meta.name, human_count(meta.metrics.params), human_count(meta.metrics.flops),
                     format_shape(meta.input.shape), f"{meta.metrics.top1:.2%}", meta.provenance.options_text])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = [False, True, True, False, True, False]
    return ["  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip()
            for row in rows]


# -- the model card (`zoo info`) --------------------------------------------------------------------


def _hint_text(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _option_lines(info: ModelInfo) -> list[str]:
    """Every architecture option of the family as ``name: type = value``, marking the variant's own."""
    spec = get_spec(info.name)
    builder = spec.family.builder
    params = inspect.signature(builder).parameters
    hints = typing.get_type_hints(builder)
    values = dict(info.options)
    lines = []
    for option in spec.family.option_names():
        hint = f": {_hint_text(hints[option])}" if option in hints else ""
        if option in values:
            value = values[option]
            by_variant = option in spec.options and spec.options[option] == value
            note = f"  # set by {info.name}" if by_variant else "  # given"
        else:
            value, note = params[option].default, ""
        lines.append(f"{option}{hint} = {value!r}{note}")
    return lines


def _pretrained_lines(info: ModelInfo) -> list[str]:
    """Each pretrained tag with the architecture it was trained as: its options, params and input."""
    from zoo._registry import get_spec
    from zoo._weights import get_weights_info

    lines = []
    built = ", ".join(f"{key}={value!r}" for key, value in get_spec(info.name).family.pretrained_options)
    for tag in info.pretrained:
        meta = get_weights_info(f"{info.name}.{tag}")
        lines.append(f"{tag}{' (default)' if meta.default else ''}: {meta.metrics.params:,} params at "
                     f"{format_shape(meta.input.shape)}, options {meta.provenance.options_text}"
                     + (f" (as trained; loaded with {built} unless given)" if built else ""))
    return lines


def model_card(info: ModelInfo) -> str:
    """Every field of a `ModelInfo` as a readable card, and whether the published count matches.

    The published count is for the variant at its default input, so the match is always checked
    there, whatever input shape ``info`` was computed at.

    Example:
        >>> print(model_card(model_info("resnet18")))  # doctest: +ELLIPSIS
        resnet18
          family             resnet
        ...
    """
    count, source, mark = _published_text(info.name)
    default = format_shape(info.default_input_shape)
    at_default = "" if info.input_shape == info.default_input_shape else f" (at the default input {default})"
    if mark == "—":
        published, match = "none claimed for this configuration", "—"
    else:
        published = f"{count} from {source}"
        if get_spec(info.name).published.decimals is None:
            verdict = "equals" if mark == "✓" else "DIFFERS FROM"
        else:
            verdict = "rounds to" if mark == "✓" else "DOES NOT ROUND TO"
        match = f"{mark} the zoo's trainable count {verdict} the published {count}{at_default}"
    options = _option_lines(info) or ["none"]
    pretrained = _pretrained_lines(info) or ["none yet"]
    fields = [
        ("family", info.family),
        ("task", info.task),
        ("paper", f"{info.paper}, {info.year}"),
        ("url", info.url),
        ("input shape", f"{format_shape(info.input_shape)} (default {default})"),
        ("num classes", str(info.num_classes)),
        ("inputs", ", ".join(info.inputs)),
        ("outputs", ", ".join(info.outputs)),
        ("params", f"{info.params:,} ({human_count(info.params)})"),
        ("trainable params", f"{info.trainable_params:,} ({human_count(info.trainable_params)})"),
        ("MACs", f"{info.macs:,} ({human_count(info.macs)})"),
        ("FLOPs", f"{info.flops:,} ({human_count(info.flops)}, 2 x MACs)"),
        ("published params", published),
        ("matches published", match),
        ("pretrained", pretrained[0]),
        *(("", more) for more in pretrained[1:]),
        ("options", options[0]),
        *(("", more) for more in options[1:]),
    ]
    width = max(len(key) for key, _ in fields)
    return "\n".join([info.name, *(f"  {key:<{width}}  {value}".rstrip() for key, value in fields)])


# -- docs/models.md (`zoo docs`) --------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A padded markdown table; ``align`` has one of ``l``, ``r``, ``c`` per column."""
    rows = [[_cell(c) for c in row] for row in rows]
    widths = [max(3, *(len(r[i]) for r in [headers, *rows])) for i in range(len(headers))]
    rules = {"l": lambda w: "-" * w, "r": lambda w: "-" * (w - 1) + ":", "c": lambda w: ":" + "-" * (w - 2) + ":"}

    def line(cells, pad=True):
        padded = (c.rjust(w) if a == "r" and pad else c.ljust(w) for c, w, a in zip(cells, widths, align))
        return "| " + " | ".join(padded) + " |"

    return [line(headers, pad=False), line([rules[a](w) for a, w in zip(align, widths)]), *(line(r) for r in rows)]


_LEGEND = """\
Counts are at each model's default input shape and number of classes.

- **params** counts every weight, batch-norm running statistics included; **trainable** leaves
  those out and is the number torchvision and the papers publish.
- **MACs** are the multiply-accumulates of one forward pass of one example through the
  convolution and dense layers; **FLOPs** = 2 x MACs (torchvision's and timm's "GFLOPS" column is
  our MACs).
- **published** is the count the tests check the trainable count against, and where it is
  published; **match** is ✓ when they agree, ✗ when they do not, and — when no count is claimed for
  that configuration (the family's docstring says why)."""


def models_markdown() -> str:
    """The markdown model list of ``docs/models.md``: one section per family, oldest paper first.

    Example:
        >>> text = models_markdown()
        >>> text.startswith("# Models")
        True
    """
    by_family: dict[str, list[str]] = {}
    for name in list_models():  # naturally sorted
        by_family.setdefault(get_spec(name).family.name, []).append(name)
    families = sorted((f for f in list_families() if f.name in by_family), key=lambda f: (f.year, f.name))

    lines = [
        "# Models",
        "",
        f"<!-- Generated by `zoo docs --out docs/models.md`; do not edit. Regenerate with `{GENERATE_COMMAND}`. -->",
        "",
        f"{sum(map(len, by_family.values()))} models in {len(families)} families, oldest paper first. "
        "`zoo info NAME` prints a model's card, options included.",
        "",
        _LEGEND,
    ]
    headers = ["name", "params", "trainable", "MACs", "FLOPs", "default input", "published", "source", "match"]
    for family in families:
        rows = []
        for name in by_family[family.name]:
            info = model_info(name)
            count, source, mark = _published_text(name)
            rows.append(
                [
                    f"`{name}`",
                    f"{info.params:,}",
                    f"{info.trainable_params:,}",
                    human_count(info.macs),
                    human_count(info.flops),
                    format_shape(info.input_shape),
                    count,
                    source,
                    mark,
                ]
            )
        task = "" if family.task == "classification" else f" · {family.task}"
        lines += [
            "",
            f"## {family.name}",
            "",
            f"[{family.paper}]({family.url}) ({family.year}){task}",
            "",
            *_markdown_table(headers, rows, align="lrrrrlrlc"),
        ]
    return "\n".join(lines) + "\n"


# -- docs/pretrained.md (`zoo docs --page pretrained`) --------------------------------------------------


def _file_size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _versus(top1: float, published: float | None) -> str:
    if published is None:
        return "—"
    gap = (top1 - published) * 100
    return f"{gap:+.1f} points {'✓' if gap >= 0 else '✗'}".replace("-", "−")


def pretrained_markdown() -> str:
    """The markdown of ``docs/pretrained.md``: every shipped pretrained weight, from its metadata only.

    Example:
        >>> pretrained_markdown().startswith("# Pretrained weights")
        True
    """
    from zoo._weights import get_weights_info, list_pretrained

    entries = [get_weights_info(name) for name in list_pretrained()]
    lines = [
        "# Pretrained weights",
        "",
        "<!-- Generated by `zoo docs --page pretrained --out docs/pretrained.md` from zoo/weights/*.json; do not "
        f"edit. Regenerate with `{GENERATE_COMMAND}`. -->",
        "",
        f"{len(entries)} pretrained weight file(s) for {len({m.arch for m in entries})} model(s) ship in the package "
        "(`zoo/weights/`). Load them by name; the file's size and sha256 are checked first:",
        "",
        "```python",
        "import zoo",
        'model = zoo.create_model("resnet20", weights="DEFAULT")           # or "fashion_mnist", '
        '"resnet20.fashion_mnist"',
        'backbone = zoo.create_model("resnet20", weights="DEFAULT", include_top=False, pooling="avg")',
        'model5 = zoo.create_model("resnet20", weights="DEFAULT", num_classes=5)  # backbone + a new head',
        'images, labels = zoo.sample_images("fashion_mnist")                # raw uint8 pixels, 10 per class',
        'logits = model(zoo.get_weights_info("resnet20").input.normalize(images))  # the input each entry lists',
        'print(zoo.predict("resnet20.fashion_mnist", images[::10]).labels)  # or raw pixels in, class names out',
        "```",
        "",
        "The weights are small configurations of the named variants, trained on CPU within the package's size "
        "limit: **options** lists how each differs from the variant's defaults (e.g. `wide_resnet16_4.fashion_mnist` "
        "is a WRN-16 of widen factor 2), and `zoo.create_model(name, weights=...)` applies them. A pretrained "
        "GoogLeNet is built without its training-only auxiliary heads (`aux_logits=True` adds them back, to "
        "fine-tune with them), as torchvision's pretrained GoogLeNet; its params and FLOPs below count them, as "
        "it was trained.",
        "",
        "**top-1** is the accuracy on the full test split, single crop, measured by the **eval** command; "
        "**published** is the best result of the same architecture family in the published table named below it, "
        "and **vs published** the difference (✓ at or above it). **FLOPs** = 2 x multiply-accumulates of one "
        "image's forward pass; **params** counts every weight, batch-norm statistics included.",
        "",
        "Your own run becomes an entry with `zoo publish RUN_DIR --tag TAG [--default]` "
        "(`training.publish.publish_run`): it re-evaluates a finished `zoo train` run's `final_weights.h5` on the "
        "full test split, refuses when the run's `eval.json` disagrees, and writes `<arch>.<tag>.h5` and its "
        "metadata (the `zoo train` command that reproduces it, the sha256, the measured metrics) into `zoo/weights/` "
        "(or `--weights-dir`): all of them or none, even if killed.",
        "",
    ]
    headers = ["weights", "default", "options", "params", "FLOPs", "file", "top-1", "published", "vs published"]
    rows = [
        [
            f"`{m.name}`",
            "✓" if m.default else "",
            m.provenance.options_text,
            f"{m.metrics.params:,}",
            human_count(m.metrics.flops),
            _file_size(m.source.size_bytes),
            f"{m.metrics.top1:.2%}",
            "—" if m.published_top1 is None else f"{m.published_top1:.1%}",
            _versus(m.metrics.top1, m.published_top1),
        ]
        for m in entries
    ]
    lines += _markdown_table(headers, rows, align="lclrrrrrr")
    for m in entries:
        norm = ", ".join(f"{mu:.4f}/{sd:.4f}" for mu, sd in zip(m.input.mean, m.input.std))
        lines += [
            "",
            f"## {m.name}",
            "",
            f"- **model**: `{m.arch}`, architecture options: {m.provenance.options_text}; {m.provenance.paper}",
            f"- **data**: `{m.provenance.dataset}`, trained on the {m.provenance.split} split; "
            f"{m.head.num_classes} classes: {', '.join(m.head.class_names)}",
            f"- **input**: {format_shape(m.input.shape)}, a raw image x becomes (x * {m.input.scale:.6g} − mean) / std "
            f"with mean/std {norm}",
            f"- **test top-1**: {m.metrics.top1:.2%} on {m.metrics.num_examples:,} images (loss {m.metrics.loss:.4f})"
            + ("" if m.published_top1 is None else
               f"; published {m.published_top1:.1%}: {m.published_source}"),
            f"- **file**: `{m.source.file}`, {m.source.size_bytes:,} bytes, sha256 `{m.source.sha256}`",
            f"- **license**: {m.provenance.license}",
            "",
            "Reproduce (from the repository's root; the recipe file holds the recipe below):",
            "",
            "```sh",
            m.provenance.command,
            m.metrics.eval_command,
            "```",
            "",
            f"Recipe (seed {m.provenance.seed}): `{m.provenance.recipe}`",
            "",
            *_markdown_table(["class", "accuracy"],
                             [[n, f"{a:.1%}"] for n, a in zip(m.head.class_names, m.metrics.per_class_accuracy)],
                             align="lr"),
        ]
        if m.notes:
            lines += ["", f"**Note.** {m.notes}"]
    return "\n".join(lines) + "\n"
