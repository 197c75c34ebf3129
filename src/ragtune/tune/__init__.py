"""``ragtune tune retriever``: adapt the packaged embedder to a workspace's own documents.

Label-free domain adaptation in the GPL/GenQ line of work (Wang et al., NAACL 2022; Ma et
al., EACL 2021), made cheap enough for a 2-core CPU: pseudo-queries by the Inverse Cloze
Task (``data.py``), hard negatives mined with the workspace's own retriever, contrastive
fine-tuning of MiniLM with in-batch + hard negatives (``train.py``), an honest held-out
evaluation on documents it never trained on (``evaluate.py``), and the run itself:
resumable stages, caps, lineage, re-embedding the store when the adapted model wins
(``run.py``).
"""
