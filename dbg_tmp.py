import sys, time, tempfile, threading, secrets
from pathlib import Path
sys.path.insert(0, "tests")
import uvicorn
from qruntime.server.settings import Settings
from qruntime.server.app import create_app
from qruntime import RuntimeService, Session
from qruntime.server.services import auth
from qruntime.server.store.database import Database

SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    time.sleep(kwargs.get("seconds", 0))
    return kwargs.get("label")
"""
def start(settings):
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True); t.start()
    while not server.started: time.sleep(0.01)
    return app, server, t
def adduser(url, name):
    db = Database(url)
    with db.session() as s:
        _, tok = auth.create_user(s, name=name)
    db.dispose(); return tok
for attempt in range(6):
    d = Path(tempfile.mkdtemp())
    (d/"q.toml").write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    import socket
    sock = socket.socket(); sock.bind(("127.0.0.1",0)); port = sock.getsockname()[1]; sock.close()
    st = Settings(db_url=f"sqlite:///{d}/q.db", port=port, admin_token="qrt_admin_"+secrets.token_hex(8), config_file=d/"q.toml", interactive_ttl=1)
    app, server, t = start(st)
    url = f"http://127.0.0.1:{port}"
    alice = RuntimeService(url=url, token=adduser(st.db_url, "alice"))
    bob = RuntimeService(url=url, token=adduser(st.db_url, "bob"))
    pid = alice.upload_program(data=SLEEPER, metadata={"name":"s","description":"d","max_execution_time":120,"is_public":True})
    queue = [alice.run(pid, inputs={"seconds":0.15,"label":i}, options={"backend":"one_lane"}) for i in range(20)]
    queue[0].wait_for_final_state(60)
    session = Session(service=bob, backend="one_lane")
    try:
        jobs=[]
        for k in range(4):
            j = session.run(pid, inputs={"seconds":0.05}); jobs.append(j)
            j.result(timeout=20)
        print("attempt", attempt, "ok")
    except Exception as e:
        rt = app.state.qruntime.runtime
        print("attempt", attempt, "HANG", type(e).__name__, [j.status() for j in jobs])
        sch = rt.scheduler
        print("running", dict(rt._running)); print("sessions", sch.sessions)
        print("session heaps", {k: len(v) for k,v in sch._sessions.items()}, "normal", {b:{o:len(h) for o,h in ow.items()} for b,ow in sch._normal.items()})
        print("job_session", rt._job_session)
        ex = rt.executor
        print("executor attrs", [a for a in vars(ex)])
        print({k: v for k, v in vars(ex).items() if 'session' in k.lower()})
        break
    finally:
        for j in queue: 
            try: j.cancel()
            except Exception: pass
        server.should_exit = True; t.join(30)
