"""A streaming program: it publishes interim results that a callback prints as they come.

The program is uploaded from source text. Each step of a rotation sweep publishes its
measured probability; ``callback(job_id, message)`` gets every interim result in publish
order, then the final result, over a WebSocket (no polling). Run it against a server::

    export QRUNTIME_URL=http://127.0.0.1:8000 QRUNTIME_TOKEN=qrt_...
    .venv/bin/python examples/streaming.py
"""

from qruntime import RuntimeService

PROGRAM = '''
import math

from qiskit import QuantumCircuit, transpile


def main(backend, user_messenger, steps=8, shots=400):
    """Rotate one qubit by growing angles; publish P(1) after each step."""
    curve = []
    for step in range(steps + 1):
        theta = math.pi * step / steps
        circuit = QuantumCircuit(1)
        circuit.ry(theta, 0)
        circuit.measure_all()
        counts = backend.run(transpile(circuit, backend), shots=shots).result().get_counts()
        p1 = counts.get("1", 0) / shots
        curve.append(p1)
        user_messenger.publish({"step": step, "theta": round(theta, 4), "p1": p1})
    return {"steps": steps, "p1": curve}
'''

METADATA = {
    "name": "rotation-sweep-example",
    "description": "Sweep an RY rotation, publishing P(1) after every step.",
    "max_execution_time": 120,
}


def on_message(job_id: str, message: dict) -> None:
    """Called in a background thread: interim results first, then the final result."""
    if "step" in message:
        bar = "#" * round(20 * message["p1"])
        print(
            f"interim step {message['step']}: theta={message['theta']:.3f} "
            f"p1={message['p1']:.3f} {bar}"
        )
    else:
        print(f"final result of {job_id}: {len(message['p1'])} points")


def main() -> None:
    service = RuntimeService()
    program_id = service.upload_program(data=PROGRAM, metadata=METADATA)
    try:
        job = service.run(
            program_id,
            {"steps": 8},
            options={"backend": "aer_simulator"},
            callback=on_message,
        )
        result = job.result()  # returns once the callback has had the final result too
        print(f"status: {job.status().name}")
        print(f"interim results kept on the server: {len(job.interim_results())}")
        print(f"P(1) at pi: {result['p1'][-1]:.3f}")
    finally:
        service.delete_program(program_id)
        service.close()


if __name__ == "__main__":
    main()
