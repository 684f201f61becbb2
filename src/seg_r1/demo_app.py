"""The Seg-R1 web demo's page (Gradio): layout, events, the ``segment`` API, the server.

    python demo/seg_r1_web_demo.py                       # tiny checkpoints, http://127.0.0.1:7860
    python demo/seg_r1_web_demo.py --model_path "$MODEL_PATH" \\
        --sam2_checkpoint third_party/sam2/checkpoints/sam2.1_hiera_large.pt

The logic it drives (no Gradio) is :mod:`seg_r1.demo_core`; tests drive that directly. The
``segment`` API endpoint (``Client(url).predict(image, task, query, api_name="/segment")``)
takes an image, a task and a query and returns the overlay image and the raw answer; its
signature is kept stable (the page's own events are private).
"""

from __future__ import annotations

import argparse
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from transformers import HfArgumentParser

from seg_r1.data.synthetic import make_scene, scene_rng
from seg_r1.demo_core import (
    DEFAULT_OPACITY,
    DEMO_TASKS,
    FRAME_SIZE_MAX,
    FRAME_SIZE_MIN,
    FRAME_SIZE_STEP,
    QUERY_PLACEHOLDERS,
    QUERY_TASKS,
    REAL_MAX_NEW_TOKENS,
    TASK_LABELS,
    TINY_MAX_NEW_TOKENS,
    DemoResult,
    SegR1Demo,
    reasoning_text,
)
from seg_r1.inference import PipelineConfig, build_pipeline
from seg_r1.logs import setup_logging
from seg_r1.policy import read_training_meta
from seg_r1.segmenters import DEFAULT_SAM2_CHECKPOINT, HF_SEGMENTER_NAMES
from seg_r1.tiny import build_tiny_checkpoints

logger = logging.getLogger(__name__)

#: Page CSS (Gradio 6 takes it in ``launch``).
CSS = """
#status {min-height: 2.5em; padding: 0.4em 0.8em; border-radius: 8px;
         border: 1px solid var(--border-color-primary);}
"""

LEGEND = (
    "Orange: the mask · yellow: boxes · green dot: foreground point (label 1) · "
    "red dot: background point (label 0)."
)


# --------------------------------------------------------------------------- examples


def write_examples(folder: str | Path, size: int = 512, seed: int = 0) -> list[list[str]]:
    """Draw the bundled examples (synthetic scenes) into ``folder``; return
    ``[[image_path, task, query], ...]``. Existing files are reused (a cache, never committed).
    """

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    specs = [
        ("salient", "foreground", {"camouflaged": False}),
        ("camouflaged", "foreground", {"camouflaged": True}),
        ("referring", "referring", {"n_objects": 3, "referring": True}),
        ("reasoning", "reasoning", {"n_objects": 3, "referring": True}),
    ]
    for index, (name, task, kwargs) in enumerate(specs):
        scene = make_scene(scene_rng(seed, "demo", index), size=size, **kwargs)
        path = folder / f"example-{index + 1}-{name}-s{seed}-{size}.png"
        if not path.is_file():
            Image.fromarray(scene.image).save(path)
        query = ""
        if task == "referring":
            query = scene.expressions[0][0]
        elif task == "reasoning":
            phrase = scene.descriptions[-1].removeprefix("the ")
            query = f"Which object in this picture is the {phrase}?"
        rows.append([str(path), task, query])
    return rows


# --------------------------------------------------------------------------- models + CLI


@dataclass
class DemoArguments:
    """The demo's own options (the models' are :class:`seg_r1.inference.PipelineConfig`'s)."""

    tiny_dir: str = field(
        default="runs/tiny",
        metadata={"help": "Where the tiny checkpoints are built (used without --model_path)."},
    )
    quickstart_dir: str = field(
        default="runs/quickstart",
        metadata={
            "help": "Without --model_path, the policy `bash scripts/quickstart.sh` trained "
            "(<dir>/grpo) is served when there is one, with its synthetic test scenes as "
            "examples; '' skips it (then the tiny random checkpoints are the fallback)."
        },
    )
    host: str = field(
        default="127.0.0.1",
        metadata={"help": "Address to bind; 0.0.0.0 serves every interface."},
    )
    port: int = field(default=7860, metadata={"help": "Port; 0 = the first free one from 7860."})
    share: bool = field(default=False, metadata={"help": "Also open a PUBLIC gradio.live link."})
    cache_dir: str = field(
        default="runs/demo", metadata={"help": "The bundled example images are drawn here."}
    )
    no_examples: bool = field(default=False, metadata={"help": "Do not offer the examples."})


def build_parser() -> HfArgumentParser:
    """Command-line options of ``demo/seg_r1_web_demo.py``: every
    :class:`~seg_r1.inference.PipelineConfig` option (policy, generation, frame, answer rule,
    segmenter) and :class:`DemoArguments`. Without ``--model_path`` the demo runs on the tiny
    random-weight checkpoints (and the tiny SAM2 unless ``--sam2_checkpoint`` names another),
    built on demand, and says so in the page."""
    return HfArgumentParser(
        (PipelineConfig, DemoArguments),
        description="Seg-R1 web demo (Gradio). With no model arguments it runs on the tiny "
        "random-weight checkpoints, built on demand, and says so in the page.",
    )


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The :class:`PipelineConfig` part of the parsed arguments."""
    return PipelineConfig(**{f.name: getattr(args, f.name) for f in fields(PipelineConfig)})


def quickstart_policy(args: argparse.Namespace) -> Path | None:
    """The quickstart's trained policy (``<quickstart_dir>/grpo``) when it exists."""
    if not args.quickstart_dir:
        return None
    policy = Path(args.quickstart_dir) / "grpo"
    return policy if (policy / "config.json").is_file() else None


def quickstart_examples(args: argparse.Namespace, n: int = 4) -> list[list[str]]:
    """Held-out scenes of the quickstart (``<quickstart_dir>/data/Test/Image``) as examples."""
    images = sorted((Path(args.quickstart_dir) / "data" / "Test" / "Image").glob("*.jpg"))
    return [[str(path), "foreground", ""] for path in images[:n]]


def load_demo(args: argparse.Namespace) -> SegR1Demo:
    """Load the models named by the command-line ``args`` and build the app. Without
    ``--model_path``: the quickstart's trained policy when there is one, else the tiny
    random-weight checkpoints."""
    config = pipeline_config(args)
    quickstart = quickstart_policy(args) if config.model_path is None else None
    sam2_defaults = config.sam2_checkpoint == DEFAULT_SAM2_CHECKPOINT
    tiny = config.model_path is None and quickstart is None
    note = ""
    if quickstart is not None:
        # The quickstart trains and scores with the classical segmenter (GrabCut seeded by the
        # prompts); it is served the same way unless a segmenter was chosen.
        segmenter = (
            "classical" if config.segmenter == "sam2" and sam2_defaults else config.segmenter
        )
        config = replace(config, model_path=str(quickstart), segmenter=segmenter)
        trained = read_training_meta(quickstart)
        default_iterations = PipelineConfig.__dataclass_fields__["classical_iterations"].default
        if config.classical_iterations == default_iterations and "classical_iterations" in trained:
            # GrabCut as the policy was trained with it (seg_r1.json), unless one was chosen
            config = replace(config, classical_iterations=int(trained["classical_iterations"]))
        logger.info("no --model_path: serving the quickstart's trained policy %s", quickstart)
        note = (
            "> Serving **the quickstart's trained policy** (`bash scripts/quickstart.sh`): a "
            "tiny policy trained on synthetic scenes, which segments scenes like the examples, "
            "not real photos. Start the demo with `--model_path` for a Seg-R1 checkpoint."
        )
    if tiny:
        checkpoints = build_tiny_checkpoints(args.tiny_dir)
        logger.info(
            "no --model_path: using the tiny random-weight checkpoints in %s", args.tiny_dir
        )
        config = replace(
            config,
            model_path=str(checkpoints.policy),
            sam2_config=str(checkpoints.sam2_config) if sam2_defaults else config.sam2_config,
            sam2_checkpoint=(
                str(checkpoints.sam2_checkpoint) if sam2_defaults else config.sam2_checkpoint
            ),
        )
        if config.segmenter in HF_SEGMENTER_NAMES and config.segmenter_path is None:
            tiny_folders = {"sam2_hf": checkpoints.sam2_hf, "sam3": checkpoints.sam3}
            config = replace(config, segmenter_path=str(tiny_folders[config.segmenter]))
    small = tiny or quickstart is not None  # tiny policies: answers of ~70 tokens at most
    max_new_tokens = config.max_new_tokens or (
        TINY_MAX_NEW_TOKENS if small else REAL_MAX_NEW_TOKENS
    )
    # A null frame_size is the checkpoint's training frame (its seg_r1.json) when it records
    # one, else the task's (referring: 1024, SPEC §2's demo frame).
    config = replace(config, max_new_tokens=max_new_tokens, batch_size=1)
    pipe = build_pipeline(config, task="referring")
    recorded = config.frame_size is None and "frame_size" in read_training_meta(config.model_path)
    if config.segmenter == "sam2":
        seg = f"SAM2 `{config.sam2_config}` (`{config.sam2_checkpoint}`)"
    elif config.segmenter in HF_SEGMENTER_NAMES:
        name = {"sam2_hf": "SAM2 (transformers)", "sam3": "SAM3 tracker (transformers)"}
        seg = f"{name[config.segmenter]} `{config.hf_segmenter_path}`"
    else:
        seg = "classical GrabCut stand-in (not SAM2)"
    description = (
        f"**Policy** `{config.model_path}` · **Segmenter** {seg} · **Device** `{pipe.device}` · "
        f"**Max new tokens** {max_new_tokens} · **Frame** {pipe.frame_size}"
        + (" (the checkpoint's training frame)" if recorded else "")
        + (f" · **Coordinates** {pipe.coordinates}" if pipe.coordinates != "frame" else "")
        + (f"\n\n{note}" if note else "")
    )
    return SegR1Demo.from_pipeline(
        pipe,
        description=description,
        tiny=tiny,
        max_new_tokens=max_new_tokens,
        default_frame=pipe.frame_size,
    )


# --------------------------------------------------------------------------- the page


def _header(app: SegR1Demo) -> str:
    lines = [
        "# Seg-R1: segmentation as text",
        "A Qwen2.5-VL policy looks at the image, writes its reasoning and mask prompts "
        "(boxes, foreground and background points) as text, and a frozen SAM2 turns them into "
        "a mask. Pick a task, upload an image or pick an example, and press **Segment**.",
    ]
    if app.description:
        lines.append(app.description)
    if app.tiny:
        lines.append(
            "> ⚠️ **Running on the tiny random-weight test checkpoints** (no `--model_path` "
            "was given). Their answers are noise and rarely parse: this mode shows the "
            "interface, not the model. Start the demo with `--model_path` (a Seg-R1 checkpoint) "
            "and `--sam2_checkpoint` for real results. To see the segmenter at work anyway, "
            "type an answer under *Raw answer* and press *Segment from this answer*."
        )
    return "\n\n".join(lines)


def build_demo(app: SegR1Demo, examples: Sequence[Sequence[str]] = ()) -> Any:
    """The Gradio page (``gr.Blocks``) over ``app``; ``examples`` are ``[path, task, query]``."""
    import gradio as gr

    def warn(result: DemoResult) -> None:
        if result.level != "ok":
            gr.Warning(html.escape(result.message))  # toasts render HTML: keep <think> text

    def ui_outputs(result: DemoResult, opacity: float) -> tuple:
        warn(result)
        if not result.ran:  # input problem: keep the previous outputs, update the status
            return (result.status,) + (gr.skip(),) * 7
        mask_path = app.save_mask(result)
        return (
            result.status,
            result.render(opacity),
            result.mask_preview(),
            str(mask_path) if mask_path else None,
            reasoning_text(result.completion) or "(no <think> block in the answer)",
            result.completion,
            result.prompts_summary(),
            result,
        )

    def on_segment(image, task, query, frame_size, opacity):
        return ui_outputs(app.run(image, task, query, frame_size), opacity)

    def on_answer(image, task, query, frame_size, opacity, answer):
        return ui_outputs(app.run(image, task, query, frame_size, answer=answer or ""), opacity)

    def on_opacity(result: DemoResult | None, opacity: float):
        if result is None or not result.ran:
            return gr.skip()
        return result.render(opacity)

    def on_task(task: str):
        if task not in QUERY_TASKS:
            return gr.update(interactive=False, value="", placeholder=QUERY_PLACEHOLDERS[task])
        return gr.update(interactive=True, placeholder=QUERY_PLACEHOLDERS[task])

    def segment(image: Any, task: str, query: str) -> tuple[np.ndarray | None, str]:
        """Segment ``image`` for ``task`` ("foreground", "referring" or "reasoning") and
        ``query``; returns the overlay (mask, boxes, points) and the raw answer."""
        result = app.run(image, task, query)
        if not result.ran:
            raise gr.Error(result.message)
        return result.render(DEFAULT_OPACITY), result.completion

    # delete_cache: forget uploads and results an hour after they were made.
    with gr.Blocks(title="Seg-R1 demo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(_header(app), elem_id="header")
        state = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                image = gr.Image(
                    type="pil",
                    image_mode=None,
                    label="Image",
                    sources=["upload", "clipboard"],
                    elem_id="input-image",
                    height=420,
                )
                task = gr.Radio(
                    choices=[(TASK_LABELS[t], t) for t in DEMO_TASKS],
                    value="foreground",
                    label="Task",
                    elem_id="task",
                )
                query = gr.Textbox(
                    label="Query",
                    placeholder=QUERY_PLACEHOLDERS["foreground"],
                    interactive=False,
                    elem_id="query",
                    info="Reasoning: end a question or sentence with ? . or ! -- anything else "
                    "is sent as a short phrase.",
                )
                with gr.Accordion("Settings", open=False):
                    frame_size = gr.Slider(
                        FRAME_SIZE_MIN,
                        FRAME_SIZE_MAX,
                        value=app.default_frame,
                        step=FRAME_SIZE_STEP,
                        label="Frame size (px)",
                        info="The image is resized to this square frame; the answer's "
                        "coordinates are pixels of it (1024 for the released checkpoints).",
                        elem_id="frame-size",
                    )
                    opacity = gr.Slider(
                        0.0,
                        1.0,
                        value=DEFAULT_OPACITY,
                        step=0.05,
                        label="Mask opacity",
                        elem_id="opacity",
                    )
                run = gr.Button("Segment", variant="primary", elem_id="run")
                if examples:
                    gr.Examples(
                        examples=[list(e) for e in examples],
                        inputs=[image, task, query],
                        label="Examples (synthetic scenes drawn at startup)",
                        api_visibility="private",
                    )
            with gr.Column(scale=7):
                status = gr.Markdown("Ready.", elem_id="status")
                overlay = gr.Image(
                    label="Mask + prompts",
                    format="png",
                    interactive=False,
                    elem_id="overlay",
                    buttons=["download", "fullscreen"],
                    height=520,
                )
                gr.Markdown(LEGEND, elem_id="legend")
                with gr.Tabs():
                    with gr.Tab("Reasoning"):
                        reasoning = gr.Textbox(
                            label="Reasoning (<think>)",
                            lines=5,
                            interactive=False,
                            elem_id="reasoning",
                        )
                    with gr.Tab("Raw answer"):
                        answer = gr.Textbox(
                            label="Raw answer (editable)",
                            lines=5,
                            interactive=True,
                            elem_id="answer",
                            buttons=["copy"],
                            info="Coordinates are pixels of the frame. Edit and press the "
                            "button to segment from your own prompts.",
                        )
                        from_answer = gr.Button("Segment from this answer", elem_id="from-answer")
                    with gr.Tab("Mask"):
                        mask_image = gr.Image(
                            label="Mask", format="png", interactive=False, elem_id="mask"
                        )
                        mask_file = gr.File(
                            label="Mask PNG (original resolution)", elem_id="mask-file"
                        )
                    with gr.Tab("Prompts"):
                        prompts = gr.JSON(label="Parsed prompts", elem_id="prompts")

        # The stable API endpoint: its own hidden components, so page changes never alter it.
        with gr.Column(visible=False):
            api_image = gr.Image(type="pil", image_mode=None, label="image")
            api_task = gr.Textbox(value="foreground", label="task")
            api_query = gr.Textbox(value="", label="query")
            api_overlay = gr.Image(format="png", label="overlay")
            api_answer = gr.Textbox(label="answer")
            api_button = gr.Button("segment")

        outputs = [status, overlay, mask_image, mask_file, reasoning, answer, prompts, state]
        common = {"concurrency_id": "seg_r1", "concurrency_limit": 1}
        run.click(
            on_segment,
            [image, task, query, frame_size, opacity],
            outputs,
            api_visibility="private",
            **common,
        )
        from_answer.click(
            on_answer,
            [image, task, query, frame_size, opacity, answer],
            outputs,
            api_visibility="private",
            **common,
        )
        opacity.release(on_opacity, [state, opacity], overlay, api_visibility="private")
        task.change(on_task, task, query, api_visibility="private")
        api_button.click(
            segment,
            [api_image, api_task, api_query],
            [api_overlay, api_answer],
            api_name="segment",
            **common,
        )
    return demo


def launch(
    demo: Any, host: str = "127.0.0.1", port: int = 7860, share: bool = False, **kwargs: Any
) -> Any:
    """Start the server (bound to ``host``; localhost by default, SPEC §8)."""
    import gradio as gr

    if share:
        logger.warning(
            "--share: the demo gets a PUBLIC gradio.live link; anyone with it can use it"
        )
    demo.queue(default_concurrency_limit=1)
    return demo.launch(
        server_name=host,
        server_port=port or None,
        share=share,
        # System fonts only: the page makes no request outside this server.
        theme=gr.themes.Soft(
            font=["ui-sans-serif", "system-ui", "sans-serif"],
            font_mono=["ui-monospace", "monospace"],
        ),
        css=CSS,
        max_file_size="50mb",
        footer_links=["api"],
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv``, load the models and serve the demo until interrupted."""
    args = build_parser().parse_args(argv)
    setup_logging(fmt="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own health checks
    app = load_demo(args)
    if args.no_examples:
        examples = []
    elif args.model_path is None and quickstart_policy(args) is not None:
        examples = quickstart_examples(args)  # the scenes the served policy was trained for
    else:
        examples = write_examples(Path(args.cache_dir) / "examples")
    demo = build_demo(app, examples)
    allowed = [str(Path(args.cache_dir).resolve())]
    launch(demo, args.host, args.port, args.share, allowed_paths=allowed)
