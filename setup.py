from setuptools import find_packages, setup

with open("requirements.txt") as f:
    requirements = [line.split("#")[0].strip() for line in f]
    requirements = [r for r in requirements if r]

setup(
    name="west",
    version="0.1.0",
    description="WeST: We Speech Transcript, LLM-based speech recognition",
    packages=find_packages(include=["west", "west.*"]),
    package_data={"west.serve": ["static/*.html"]},  # the demo page west-serve shows at /
    python_requires=">=3.10",
    install_requires=requirements,
    extras_require={
        # ZeRO-3 training, on GPUs and on CPU (gloo). 0.19.3: ZeRO-3 with the non-reentrant
        # gradient checkpointing WeST uses; 0.19.2 and older raise CheckpointError in backward.
        "deepspeed": ["deepspeed>=0.19.3"],
        # openai: the official client, which the west-serve tests talk to the server with;
        # requests: the tests' plain HTTP calls (bad inputs, metrics).
        "dev": ["pytest", "hypothesis", "ruff", "openai", "requests"],
    },
    entry_points={
        "console_scripts": [
            "west-train = west.bin.train:main",
            "west-recognize = west.bin.recognize:main",
            "west-score = west.bin.score:main",
            "west-transcribe = west.bin.transcribe:main",
            "west-export = west.bin.export:main",
            "west-serve = west.bin.serve:main",
        ],
    },
)
