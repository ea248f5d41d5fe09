"""Upload a program from a file and its metadata JSON, run it, read its result.

Run it against a server (see the README's first lines)::

    export QRUNTIME_URL=http://127.0.0.1:8000 QRUNTIME_TOKEN=qrt_...
    .venv/bin/python examples/upload_program.py
"""

from pathlib import Path

from qruntime import RuntimeService

HERE = Path(__file__).parent


def main() -> None:
    service = RuntimeService()  # QRUNTIME_URL and QRUNTIME_TOKEN, else the saved account
    program_id = service.upload_program(
        data=HERE / "ghz_program.py", metadata=HERE / "ghz_program.json"
    )
    try:
        program = service.program(program_id)
        print(f"uploaded {program.name!r} as {program_id}")

        inputs = program.parameters()  # a ParameterNamespace built from the spec
        inputs.num_qubits = 4
        inputs.shots = 2000
        job = service.run(program_id, inputs, options={"backend": "aer_simulator"})
        print(f"job {job.job_id()} on {job.backend_name}")
        result = job.result()
        print(f"status: {job.status().name}")
        print(f"counts: {dict(sorted(result['counts'].items()))}")
        print(f"ghz_fraction: {result['ghz_fraction']:.3f}")
    finally:
        service.delete_program(program_id)
        service.close()


if __name__ == "__main__":
    main()
