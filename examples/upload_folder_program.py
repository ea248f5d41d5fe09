"""Upload a folder program (an entry module and a helper module), run it on a noisy device.

The client zips the folder; the metadata names the entry module (``entry_point``) and the
packages the program needs (``dependencies``), which the server checks against what its
program environment has installed. Run it against a server::

    export QRUNTIME_URL=http://127.0.0.1:8000 QRUNTIME_TOKEN=qrt_...
    .venv/bin/python examples/upload_folder_program.py
"""

from pathlib import Path

from qruntime import RuntimeService

HERE = Path(__file__).parent


def main() -> None:
    service = RuntimeService()
    program_id = service.upload_program(
        data=HERE / "folder_program", metadata=HERE / "folder_program.json"
    )
    try:
        program = service.program(program_id)
        print(f"uploaded {program.name!r} as {program_id}")
        print(f"files: {program.files}")
        job = service.run(program_id, {"secret": "1011"}, options={"backend": "fake_5q"})
        result = job.result()
        print(f"secret: 1011, found: {result['found']} (confidence {result['confidence']})")
        print(f"correct: {result['correct']}")
    finally:
        service.delete_program(program_id)
        service.close()


if __name__ == "__main__":
    main()
