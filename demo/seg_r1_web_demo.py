"""Seg-R1 web demo (Gradio): upload an image, pick a task, see the reasoning, prompts and mask.

    python demo/seg_r1_web_demo.py                      # quickstart policy or tiny checkpoints, http://127.0.0.1:7860
    python demo/seg_r1_web_demo.py --model_path "$MODEL_PATH" \\
        --sam2_checkpoint third_party/sam2/checkpoints/sam2.1_hiera_large.pt

With no model arguments the demo serves the policy `bash scripts/quickstart.sh` trained
(runs/quickstart/grpo) when there is one, else it builds the tiny random-weight checkpoints
into runs/tiny (about 10 s, once); the page says which. It binds to 127.0.0.1; use --host 0.0.0.0 to
serve a network and --share for a public gradio.live link. All options: --help, and
demo/README.md. The app logic lives in src/seg_r1/demo_app.py.
"""

from seg_r1.demo_app import main

if __name__ == "__main__":
    main()
