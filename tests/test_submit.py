"""`spiketune submit --slurm`: options mapped to submitit's parameters, the storage rules, a
fake SLURM (sbatch, sacct, scancel on PATH) for the script, the job ids, `ls` and `stop`, and
submitit's local executor for real workers: three of them with one killed, GPU allocations,
and a stop that reaches them through the storage."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from _processes import alive, wait_for
from typer.testing import CliRunner

from spiketune.cli import app
from spiketune.engine.launch import (
    JobRecord,
    SlurmLauncher,
    cancel_jobs,
    job_states,
    read_jobs,
    record_jobs,
    submit,
)
from spiketune.engine.storage import PASSWORD_ENV, StudyStore, strip_password
from spiketune.errors import ConfigError, LaunchError, StorageError

TRIAL = """
    import os, random, time
    import spiketune.trial as st
    params = st.get_next_parameter()
    stuck = os.environ.get("STUCK_MARKER")
    if stuck:
        try:  # the first trial to get here hangs: its worker is killed meanwhile
            fd = os.open(stuck, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, os.environ["SPIKETUNE_TRIAL_DIR"].encode())
            os.close(fd)
            time.sleep(60)
        except FileExistsError:
            pass
    time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")) or random.uniform(0.1, 0.4))
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    job = os.environ.get("SUBMITIT_LOCAL_JOB_ID", "-1")  # the local job of the trial's worker
    st.report_final_result({"default": params["x"], "gpu": int(gpu) if gpu else -1,
                            "job": int(job)})
"""


def _config(tmp_path: Path, code: Path, *, max_trials: int, extra: str = "") -> Path:
    cfg = tmp_path / "worker.toml"
    cfg.write_text(
        f'name = "fleet"\n'
        f'trial_command = "{sys.executable} trial.py"\n'
        f'trial_code_directory = "{code}"\n'
        f'experiment_dir = "{tmp_path / "experiments"}"\n'
        f"max_trials = {max_trials}\n"
        f'tuner = "Random"\n'
        f"max_retries = 1\n"
        f"heartbeat_interval = 0.3\n"
        f"grace_period = 2.0\n"
        f"{extra}"
        f"[search_space]\n"
        f'x = {{_type = "uniform", _value = [0, 1]}}\n'
    )
    return cfg


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """srun, sbatch (saves the script, answers job 4242), sacct (states from states.txt)
    and scancel (records its arguments) on PATH; returns their directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "srun", "#!/bin/sh\nexit 0\n")
    _executable(bin_dir / "sbatch",
                f'#!/bin/sh\ncp "$1" {bin_dir}/script.sh\necho "Submitted batch job 4242"\n')
    _executable(bin_dir / "sacct",
                f"#!/bin/sh\necho 'JobID|State|NodeList'\ncat {bin_dir}/states.txt\n")
    _executable(bin_dir / "scancel", f'#!/bin/sh\necho "$@" >> {bin_dir}/cancelled.txt\n')
    (bin_dir / "states.txt").write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


# ------------------------------------------------------------------------------ options
def test_every_option_maps_to_a_submitit_parameter() -> None:
    launcher = SlurmLauncher(options={
        "partition": "gpu", "gpus_per_worker": 2, "time": "4h", "mem": "16G",
        "cpus_per_worker": 8, "account": "snn", "qos": "high", "constraint": "a100",
        "array_parallelism": 2})
    assert launcher.parameters == {
        "name": "spiketune-worker", "slurm_partition": "gpu", "gpus_per_node": 2,
        "timeout_min": 240, "mem_gb": 16.0, "cpus_per_task": 8, "slurm_account": "snn",
        "slurm_qos": "high", "slurm_constraint": "a100", "slurm_array_parallelism": 2}
    assert SlurmLauncher(options={"time": "90s", "mem": "512M"}).parameters["timeout_min"] == 2
    assert SlurmLauncher(options={"time": "1d", "mem": "1.5T"}).parameters["mem_gb"] == 1536.0


def test_unknown_and_bad_options_are_named_with_what_is_accepted() -> None:
    with pytest.raises(ConfigError) as err:
        SlurmLauncher(options={"time": "soon", "mem": "lots", "partion": "gpu"})
    rules = {p.field: p.rule for p in err.value.problems}
    assert set(rules) == {"--time", "--mem", "--partion"}
    assert "--partition" in rules["--partion"] and "--constraint" in rules["--partion"]
    with pytest.raises(ConfigError) as err:
        SlurmLauncher(options={"time": "1h"}, slurm_options={"exlude": "n1", "gres": "gpu:1"})
    (problem,) = err.value.problems
    assert problem.field == "--slurm-option exlude"
    assert "exclude" in problem.rule and "mail_type" in problem.rule
    with pytest.raises(ConfigError) as err:  # one setting, two ways: refused
        SlurmLauncher(options={"time": "1h", "partition": "gpu"},
                      slurm_options={"partition": "cpu"})
    assert "--partition" in err.value.problems[0].rule
    with pytest.raises(ConfigError) as err:  # SLURM's time limit is never left to chance
        SlurmLauncher(options={})
    assert err.value.problems[0].field == "--time"
    assert SlurmLauncher(executor="local").parameters["timeout_min"] > 60 * 24


def test_cli_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    assert runner.invoke(app, ["submit", "--help"]).exit_code == 0
    neither = runner.invoke(app, ["submit", str(cfg), "--workers", "2"])
    assert neither.exit_code == 2 and "--slurm or --k8s" in neither.output
    mixed = runner.invoke(app, ["submit", str(cfg), "--workers", "2", "--k8s", "--image", "i",
                                "--partition", "gpu", "--time", "1h"])
    assert mixed.exit_code == 2
    assert "--partition, --time: not an option of --k8s" in mixed.output
    unknown = runner.invoke(app, ["submit", str(cfg), "--workers", "2", "--slurm", "--time",
                                  "1h", "--slurm-option", "bogus=1"])
    assert unknown.exit_code == 2
    assert "bogus" in unknown.output and "exclude" in unknown.output
    bare = runner.invoke(app, ["submit", str(cfg), "--workers", "2", "--slurm", "--time", "1h",
                               "--slurm-option", "exclude"])
    assert bare.exit_code == 2 and "KEY=VALUE" in bare.output


# ------------------------------------------------------------------------------ storage rules
def test_sqlite_and_passwords_are_refused_for_slurm(tmp_path: Path, trial_script,
                                                    fake_slurm: Path) -> None:
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=3)
    slurm = SlurmLauncher(options={"time": "1h"})
    with pytest.raises(StorageError) as err:
        submit(cfg, slurm, workers=2, storage=f"sqlite:///{tmp_path / 's.db'}")
    assert "PostgreSQL" in str(err.value) and "journal" in str(err.value)
    with pytest.raises(ConfigError) as err:
        submit(cfg, slurm, workers=2, storage="postgresql://hpo:Sesame-42@nohost/hpo")
    assert "Sesame-42" not in str(err.value) and "SPIKETUNE_DB_PASSWORD" in str(err.value)
    with pytest.raises(ConfigError) as err:
        submit(cfg, slurm, workers=2)  # no storage anywhere
    assert err.value.problems[0].field == "storage"
    assert not (tmp_path / "experiments").exists()  # nothing registered, nothing written


def test_without_slurm_the_message_names_the_local_executor(tmp_path: Path, trial_script,
                                                            monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no srun
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=3)
    with pytest.raises(LaunchError) as err:
        submit(cfg, SlurmLauncher(options={"time": "1h"}), workers=2,
               storage="postgresql://hpo@nohost/hpo")  # refused before any connection
    assert "srun" in str(err.value) and "--executor local" in str(err.value)


# ------------------------------------------------------------------------------ fake SLURM
def test_slurm_submission_script_ids_states_and_stop(postgres_server, tmp_path: Path,
                                                     trial_script, fake_slurm: Path,
                                                     monkeypatch) -> None:
    """Three workers as one job array through submitit's SlurmExecutor (sbatch faked): the
    script carries every option; ids printed and recorded; `ls` shows sacct's states; `stop`
    cancels the pending job and the running one past the grace period, not the finished."""
    url = strip_password(postgres_server.new_database())
    monkeypatch.setenv(PASSWORD_ENV, postgres_server.password)
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=6)
    runner = CliRunner()
    result = runner.invoke(app, [
        "submit", str(cfg), "--slurm", "--workers", "3", "--storage", url,
        "--partition", "gpu", "--gpus-per-worker", "2", "--time", "4h", "--mem", "16G",
        "--cpus-per-worker", "8", "--account", "snn", "--qos", "high", "--constraint", "a100",
        "--array-parallelism", "2", "--slurm-option", "exclude=node7"])
    assert result.exit_code == 0, result.output
    assert "4242_0 4242_1 4242_2" in result.output
    script = (fake_slurm / "script.sh").read_text()
    for line in ("--partition=gpu", "--gpus-per-node=2", "--time=240", "--mem=16GB",
                 "--cpus-per-task=8", "--account=snn", "--qos=high", "--constraint=a100",
                 "--array=0-2%2", "--exclude=node7", "--job-name=spiketune-worker"):
        assert f"#SBATCH {line}\n" in script, line
    (directory,) = (tmp_path / "experiments").iterdir()
    jobs = read_jobs(directory)
    assert [j.id for j in jobs] == ["4242_0", "4242_1", "4242_2"]
    assert {j.executor for j in jobs} == {"slurm"}
    # the experiment is registered, and every job joins it: its id is in each task
    store = StudyStore.open(url, directory.name)
    store.close()
    pickles = list((directory / "jobs").rglob("*.pkl"))
    assert len(pickles) == 3
    assert not any(postgres_server.password.encode() in p.read_bytes() for p in pickles)
    assert postgres_server.password not in script

    (fake_slurm / "states.txt").write_text(
        "4242_0|PENDING|\n4242_1|RUNNING|node1\n4242_2|COMPLETED|node2\n")
    monkeypatch.setenv("SPIKETUNE_EXPERIMENTS", str(tmp_path / "experiments"))
    listed = runner.invoke(app, ["ls"])
    assert listed.exit_code == 0, listed.output
    rows = {job: [line for line in listed.output.splitlines() if job in line]
            for job in ("4242_0", "4242_1", "4242_2")}
    assert all(len(r) == 1 for r in rows.values()), listed.output
    assert "PENDING" in rows["4242_0"][0] and "RUNNING" in rows["4242_1"][0]
    assert "COMPLETED" in rows["4242_2"][0] and "slurm" in rows["4242_2"][0]

    stopped = runner.invoke(app, ["stop", directory.name, "--grace", "0"])
    assert stopped.exit_code == 0, stopped.output
    assert "cancelled 1 pending jobs: 4242_0" in stopped.output
    assert "cancelled 1 jobs still running after 0 s: 4242_1" in stopped.output
    assert "jobs: 1 ended, 2 cancelled" in stopped.output
    assert (fake_slurm / "cancelled.txt").read_text().split() == ["4242_0", "4242_1"]


def test_cancel_waits_the_grace_period_for_running_jobs(monkeypatch, fake_slurm: Path) -> None:
    """Pending: cancelled at once; running: cancelled only once the grace period is over,
    unless it ends first; ended: left alone."""
    import spiketune.engine.launch._jobs as jobs_module

    def job(job_id: str) -> JobRecord:
        return JobRecord(id=job_id, executor="slurm", folder="/nowhere", submitted="", host="h")

    seen = {"n": 0}

    def states(left: Sequence[JobRecord]) -> dict[str, str]:
        seen["n"] += 1
        return {"p": "PENDING", "r1": "RUNNING" if seen["n"] < 3 else "COMPLETED",
                "r2": "RUNNING", "e": "FAILED"}

    now = {"t": 100.0}
    cancelled: list[str] = []
    monkeypatch.setattr(jobs_module, "cancel", lambda j: cancelled.append(j.id))
    done = cancel_jobs([job("p"), job("r1"), job("r2"), job("e")], 10.0, since=100.0, poll=4.0,
                       states=states, clock=lambda: now["t"],
                       sleep=lambda s: now.__setitem__("t", now["t"] + s))
    assert done.pending == ("p",) and done.overdue == ("r2",)
    assert sorted(done.ended) == ["e", "r1"]
    assert cancelled == ["p", "r2"]
    assert now["t"] >= 110.0  # r2 had its whole grace period


def test_slurm_jobs_off_the_cluster_are_named_at_once_not_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without sacct and scancel on PATH, `stop` used to print a warning a second for its
    whole grace period and then fail on scancel; `ls` shows the jobs UNKNOWN."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM commands here
    job = JobRecord(id="7_0", executor="slurm", folder=str(tmp_path), submitted="", host="h")
    asked: list[int] = []
    with pytest.raises(LaunchError, match="sacct and scancel not on PATH"):
        cancel_jobs([job], 60.0, states=lambda left: asked.append(1) or {})
    assert not asked  # said before any wait on states that cannot be read
    assert job_states([job]) == {"7_0": "UNKNOWN"}
    local = JobRecord(id="1", executor="local", folder=str(tmp_path), submitted="", host="h")
    assert cancel_jobs([local], 0.0).ended == ()  # local jobs need no SLURM


# ------------------------------------------------------------------------------ local executor
def _wait_jobs_ended(directory: Path, timeout: float) -> dict[str, str]:
    jobs = read_jobs(directory)
    wait_for(lambda: "RUNNING" not in job_states(jobs).values(), timeout, "the jobs to end")
    return job_states(jobs)


@pytest.mark.slow
def test_local_executor_three_workers_one_killed(postgres_server, tmp_path: Path,
                                                 trial_script, monkeypatch) -> None:
    """Three workers through submitit's local executor on one PostgreSQL study, max_trials
    20; the worker of a hung trial is killed -9: exactly 20 trials end COMPLETE, the lost one
    FAILED and retried once; `ls` shows two jobs FINISHED and the killed one INTERRUPTED."""
    url = strip_password(postgres_server.new_database())
    monkeypatch.setenv(PASSWORD_ENV, postgres_server.password)
    marker = tmp_path / "stuck"
    monkeypatch.setenv("STUCK_MARKER", str(marker))
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=20)
    launched = submit(cfg, SlurmLauncher(executor="local"), workers=3, storage=url)
    directory = tmp_path / "experiments" / str(launched.experiment_id)
    assert [j.id for j in read_jobs(directory)] == list(launched.job_ids)
    try:
        wait_for(lambda: marker.exists() and marker.read_text(), 120, "a trial to hang")
        process = json.loads((Path(marker.read_text()) / "process.json").read_text())
        victim = process["scheduler_pid"]
        os.kill(victim, signal.SIGKILL)
        states = _wait_jobs_ended(directory, 240)
    finally:
        for job in read_jobs(directory):
            if alive(int(job.id)):
                os.kill(int(job.id), signal.SIGKILL)
    assert sorted(states.values()) == ["FINISHED", "FINISHED", "INTERRUPTED"]

    store = StudyStore.open(url, directory.name)
    trials = store.trials()
    assert store.unfinished() == []
    store.close()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 20
    assert sorted(t.user_attrs["sequence_id"] for t in complete) == list(range(20))
    (lost,) = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert f":{victim}/" in lost.user_attrs["reason"]
    (retry,) = [t for t in trials if "retry_of" in t.user_attrs]
    assert retry.user_attrs["retry_of"] == lost.number
    assert retry.user_attrs["parameters"] == lost.user_attrs["parameters"]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert len(trials) == 21
    assert not alive(process["pid"])  # the hung trial was ended with its lost worker

    listed = CliRunner().invoke(app, ["ls", "--root", str(tmp_path / "experiments")])
    assert listed.exit_code == 0, listed.output
    for job_id, state in states.items():
        assert any(job_id in line and state in line for line in listed.output.splitlines())


@pytest.mark.slow
def test_local_jobs_follow_their_gpu_allocation(tmp_path: Path, trial_script,
                                                monkeypatch) -> None:
    """A fake allocation: the machine lists 10 GPUs (nvidia-smi), 3,5,7,9 of them are this
    process's (CUDA_VISIBLE_DEVICES, as SLURM sets it); two local workers with 2 GPUs each get
    two of those each, and every trial runs on one of its own job's GPUs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "nvidia-smi", "#!/bin/sh\n" + "".join(
        f'echo "GPU {i}: Fake (UUID: GPU-{i})"\n' for i in range(10)))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7,9")
    monkeypatch.setenv("TRIAL_SLEEP", "0.05")
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=12)
    storage = f"sqlite:///{tmp_path / 'study.db'}"  # one machine: SQLite is fine
    launched = submit(cfg, SlurmLauncher(executor="local", options={"gpus_per_worker": 2}),
                      workers=2, storage=storage)
    directory = tmp_path / "experiments" / str(launched.experiment_id)
    assert sorted(_wait_jobs_ended(directory, 240).values()) == ["FINISHED", "FINISHED"]
    store = StudyStore.open(storage, directory.name, read_only=True)
    trials = store.trials()
    store.close()
    assert len(trials) == 12
    first, second = (int(j) for j in launched.job_ids)
    allocation = {first: {3, 5}, second: {7, 9}}  # in the order the jobs were submitted
    for t in trials:
        metrics = t.user_attrs["metrics"]
        assert metrics["gpu"] in allocation[metrics["job"]], metrics


@pytest.mark.slow
def test_stop_reaches_local_jobs_through_the_storage(tmp_path: Path, trial_script,
                                                     monkeypatch) -> None:
    """`stop` asks the workers through the storage; jobs that end within the grace period are
    not cancelled (they finished: submitit wrote their result)."""
    monkeypatch.setenv("TRIAL_SLEEP", "0.2")
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=500)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    launched = submit(cfg, SlurmLauncher(executor="local"), workers=2, storage=storage)
    directory = tmp_path / "experiments" / str(launched.experiment_id)
    try:
        wait_for(lambda: len(list(directory.glob("trials/*/metrics.jsonl"))) >= 3, 120,
                 "trials")
        stopped = CliRunner().invoke(app, ["stop", directory.name, "--root",
                                           str(tmp_path / "experiments"), "--grace", "120",
                                           "--storage", storage])
        assert stopped.exit_code == 0, stopped.output
        assert "jobs: 2 ended, 0 cancelled" in stopped.output
    finally:
        for job in read_jobs(directory):
            if alive(int(job.id)):
                os.kill(int(job.id), signal.SIGKILL)
    assert set(job_states(read_jobs(directory)).values()) == {"FINISHED"}


def test_a_refused_submission_registers_nothing_and_starts_no_job(
    tmp_path: Path, trial_script, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two local workers of 1 GPU each on a machine with one, or an experiments root that is
    a file: refused before the experiment is registered or any job starts (the GPU check
    used to come after the first job had started, which then ran unrecorded)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=2)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(ConfigError, match=r"2 local workers x 1 GPUs = 2 GPUs, and this "
                                          r"machine has 1 \(CUDA_VISIBLE_DEVICES='0'\)"):
        submit(cfg, SlurmLauncher(executor="local", options={"gpus_per_worker": 1}),
               workers=2, storage=storage)
    assert not (tmp_path / "experiments").exists()
    (tmp_path / "experiments").write_text("a file")
    with pytest.raises(StorageError, match=r"the experiments root .* is not a directory"):
        submit(cfg, SlurmLauncher(executor="local"), workers=1, storage=storage)
    assert not (tmp_path / "study.db").exists()


def test_submitting_workers_to_an_experiment_whose_budget_is_spent_is_refused(
    tmp_path: Path, trial_script, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its jobs would end at once (on SLURM, after waiting in the queue for nothing)."""
    monkeypatch.setenv("TRIAL_SLEEP", "0.01")
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=2)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    from spiketune.engine.launch._worker import join_worker

    join_worker(cfg, storage=storage).run()
    with pytest.raises(LaunchError, match=r"has used its budget \(max_trials 2, every one "
                                          r"started and finished\).*Raise max_trials"):
        submit(cfg, SlurmLauncher(executor="local"), workers=1, storage=storage)
    assert not list((tmp_path / "experiments").glob("*/jobs.json"))


@pytest.mark.slow
def test_a_local_job_whose_every_trial_failed_is_failed(tmp_path: Path, trial_script) -> None:
    """A worker job whose experiment got no result ends as `spiketune worker` does (exit 1):
    submitit records an error, and `ls` shows the job FAILED, not FINISHED."""
    code = trial_script("raise SystemExit('no data here')")
    cfg = _config(tmp_path, code, max_trials=2)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    launched = submit(cfg, SlurmLauncher(executor="local"), workers=1, storage=storage)
    directory = tmp_path / "experiments" / str(launched.experiment_id)
    assert set(_wait_jobs_ended(directory, 120).values()) == {"FAILED"}
    listed = CliRunner().invoke(app, ["ls", "--root", str(tmp_path / "experiments")])
    assert "FAILED" in listed.output and "FINISHED" not in listed.output, listed.output


def test_a_job_that_outlives_the_grace_period_is_cancelled(tmp_path: Path, exp_root: Path,
                                                           monkeypatch) -> None:
    """A local job still running after --grace gets SIGTERM (as scancel sends), even when
    the experiment itself runs no trial any more."""
    from spiketune import Experiment
    from spiketune.engine.launch._jobs import new_record

    exp = Experiment(trial=lambda p: p["x"], search_space={"x": {"_type": "uniform",
                                                                 "_value": [0, 1]}},
                     max_trials=1, experiment_dir=exp_root)
    exp.run()
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        record_jobs(exp.directory, [new_record(str(sleeper.pid), "local", tmp_path)])
        assert job_states(read_jobs(exp.directory)) == {str(sleeper.pid): "RUNNING"}
        stopped = CliRunner().invoke(app, ["stop", exp.id, "--grace", "0.2"])
        assert stopped.exit_code == 0, stopped.output
        assert f"cancelled 1 jobs still running after 0.2 s: {sleeper.pid}" in stopped.output
        assert "is not running" in stopped.output
        assert sleeper.wait(timeout=30) == -signal.SIGTERM
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_a_job_that_starts_after_a_stop_does_not_restart_the_experiment(
    tmp_path: Path, trial_script, monkeypatch
) -> None:
    """A worker job starting late (queued, or slow to import) after ``spiketune stop`` ends
    without running; one submitted after the stop (a new submission resumes) runs and
    clears it. Before, a late job's new session cleared the stop and ran on."""
    from datetime import datetime, timedelta

    import spiketune.engine.runners
    from spiketune import load_config
    from spiketune.engine.experiment import request_stop_in_study
    from spiketune.engine.launch import WorkerTask
    from spiketune.engine.launch._worker import join_worker, stop_request

    monkeypatch.setenv("TRIAL_SLEEP", "0.05")
    # the job's process becomes its trials' subreaper; this one is pytest's
    monkeypatch.setattr(spiketune.engine.runners, "become_subreaper", lambda: None)
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=2)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    exp = join_worker(load_config(cfg), storage=storage)
    exp.close()
    submitted = (datetime.now() - timedelta(seconds=5)).isoformat(timespec="seconds")
    request_stop_in_study(storage, exp.id)  # the stop comes after the job's submission
    late = WorkerTask(config=str(cfg), storage=storage, experiment=exp.id, submitted=submitted)
    assert "not started" in late()
    store = StudyStore.open(storage, exp.id, read_only=True)
    assert store.trials() == []
    store.close()
    assert stop_request(storage, exp.id) is not None  # still asked to stop

    # a new submission resumes, even in the same second as the stop (`stop && submit`)
    resumed = WorkerTask(config=str(cfg), storage=storage, experiment=exp.id,
                         submitted=datetime.now().isoformat())
    assert "2 trials, 2 complete" in resumed()
    assert stop_request(storage, exp.id) is None


def test_a_stop_that_comes_while_a_job_joins_still_keeps_it_from_running(
    tmp_path: Path, trial_script
) -> None:
    """The stop arrives after the job's first look (it saw none) but before its session
    starts: the session's own look, in the read that would clear the request, ends it.
    Without ``submitted`` the same worker resumes the experiment, as `spiketune worker`
    by hand does."""
    from datetime import datetime, timedelta

    from spiketune import load_config
    from spiketune.engine.experiment import request_stop_in_study
    from spiketune.engine.launch._worker import join_worker, stop_request

    cfg = load_config(_config(tmp_path, trial_script(TRIAL), max_trials=2))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    submitted = (datetime.now() - timedelta(seconds=5)).isoformat(timespec="seconds")
    worker = join_worker(cfg, storage=storage, submitted=submitted)  # no stop yet
    request_stop_in_study(storage, worker.id)  # ... then the stop, before its run()
    results = worker.run()
    assert (worker.status, results.records) == ("stopped", [])
    assert stop_request(storage, worker.id) is not None  # the request stands for the others

    by_hand = join_worker(cfg, storage=storage, experiment=worker.id)
    assert len(by_hand.run().records) == 2
    assert stop_request(storage, worker.id) is None


def test_a_worker_started_by_hand_is_reached_by_a_stop_that_comes_while_it_connects(
    tmp_path: Path, trial_script, monkeypatch
) -> None:
    """`spiketune stop` while a `spiketune worker` is still starting up (importing, reaching
    the database) stops it too: the command's start counts as its submission. Before, its
    new session cleared the stop and it ran on alone. A worker started after the stop
    resumes the experiment, as before."""
    import spiketune.engine.launch as launch
    from spiketune.engine.experiment import request_stop_in_study
    from spiketune.engine.launch._worker import stop_request

    monkeypatch.setenv("TRIAL_SLEEP", "0.05")
    cfg = _config(tmp_path, trial_script(TRIAL), max_trials=2)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    real = launch.join_worker

    def stopped_while_joining(*args: object, **kwargs: object):
        joined = real(*args, **kwargs)
        request_stop_in_study(storage, joined.id)  # the user's stop, before the session
        return joined

    monkeypatch.setattr(launch, "join_worker", stopped_while_joining)
    first = CliRunner().invoke(app, ["worker", str(cfg), "--storage", storage, "-q"])
    assert first.exit_code == 0, first.output
    assert "stopped: 0 trials" in first.output
    (exp_id,) = [p.name for p in (tmp_path / "experiments").iterdir()]
    assert stop_request(storage, exp_id) is not None  # the request stands for the others

    monkeypatch.setattr(launch, "join_worker", real)
    again = CliRunner().invoke(app, ["worker", str(cfg), "--storage", storage, "-q"])
    assert again.exit_code == 0, again.output
    assert "done: 2 trials, 2 complete" in again.output, again.output
    assert stop_request(storage, exp_id) is None


def test_a_stop_counts_from_its_microsecond_and_an_older_record_from_its_second() -> None:
    from spiketune.engine.scheduler import stopped_since

    assert stopped_since("2026-01-31T12:00:00.500000", "2026-01-31T12:00:00.400000")
    assert stopped_since("2026-01-31T12:00:00.5", "2026-01-31T12:00:00.5")  # the stop wins
    assert not stopped_since("2026-01-31T12:00:00.500000", "2026-01-31T12:00:00.600000")
    assert not stopped_since("2026-01-31T12:00:00", "2026-01-31T12:00:00.200000")
    assert not stopped_since(None, "2026-01-31T12:00:00")
    assert not stopped_since("2026-01-31T12:00:00", None)  # a worker started by hand


def test_a_stop_from_another_time_zone_is_compared_as_the_instant_it_names(
    tmp_path: Path,
) -> None:
    """A stop requested from a laptop in another time zone than the workers': its time
    carries its UTC offset, so a worker started after it (by the clocks' common instant)
    resumes, and one started before it stops."""
    import time
    from datetime import datetime

    from spiketune.engine.experiment import check_submitted, request_stop_in_study
    from spiketune.engine.launch._worker import stop_request
    from spiketune.engine.scheduler import stopped_since

    before = os.environ.get("TZ")
    os.environ["TZ"] = "EST5"  # the workers' machine: UTC-5 (a POSIX rule: no tz database)
    time.tzset()
    try:
        stop = "2026-01-31T13:00:00+01:00"  # 12:00 UTC, 07:00 on the workers' clocks
        assert not stopped_since(stop, "2026-01-31T12:30:00+00:00")  # started 30 min after
        assert stopped_since(stop, "2026-01-31T11:59:59+00:00")  # started just before
        assert stopped_since(stop, "2026-01-31T12:00:00+00:00")  # the same instant: stop wins
        # a worker's own time is local without an offset (check_submitted)
        assert check_submitted("2026-01-31T12:30:00+00:00") == "2026-01-31T07:30:00"
        assert not stopped_since(stop, "2026-01-31T07:30:00")  # 12:30 UTC: after the stop
        assert stopped_since(stop, "2026-01-31T06:59:00")  # 11:59 UTC: before it
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()

    url = f"sqlite:///{tmp_path / 'study.db'}"  # `spiketune stop` writes its offset
    StudyStore.open(url, "zones", create=True).close()
    request_stop_in_study(url, "zones")
    written = datetime.fromisoformat(stop_request(url, "zones") or "")
    assert written.utcoffset() is not None
    assert abs((datetime.now().astimezone() - written).total_seconds()) < 60


def test_a_submission_time_is_checked_and_read_as_local_time(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from spiketune import load_config
    from spiketune.engine.experiment import check_submitted
    from spiketune.engine.launch._worker import join_worker

    assert check_submitted("2026-01-31T12:00:00.75") == "2026-01-31T12:00:00.750000"
    aware = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert check_submitted(aware.isoformat()) == aware.astimezone().replace(
        tzinfo=None).isoformat()
    with pytest.raises(ConfigError, match=r"submitted: an ISO date.*\(got .yesterday.\)"):
        check_submitted("yesterday")
    cfg = load_config(_config(tmp_path, tmp_path, max_trials=1))
    with pytest.raises(ConfigError, match="submitted"):  # before anything is written
        join_worker(cfg, storage=f"sqlite:///{tmp_path / 'study.db'}", submitted="soon")
    assert not (tmp_path / "study.db").exists()
    cli = CliRunner().invoke(app, ["worker", str(tmp_path / "worker.toml"), "--storage",
                                   f"sqlite:///{tmp_path / 'study.db'}", "--submitted", "soon"])
    assert cli.exit_code == 2 and "--submitted" in cli.output and "ISO" in cli.output


def test_of_two_workers_ending_in_one_second_the_later_gives_the_status(tmp_path: Path) -> None:
    """A directory's status is its last scheduler's; two workers that end in the same second
    used to tie (times kept to the second) and the first file's name won."""
    from spiketune.engine.experiment import _write_scheduler_state, scheduler_status
    from spiketune.engine.storage import ExperimentPaths

    paths = ExperimentPaths(tmp_path)
    for first, last in (("stopped", "done"), ("done", "stopped")):
        _write_scheduler_state(paths.worker_json("a"), first)
        _write_scheduler_state(paths.worker_json("b"), last)
        assert scheduler_status(tmp_path) == last
