"""Integrations of mnemostore with agent frameworks, one subpackage each, behind an extra of its own.

Each is a thin layer over the public store API (``mnemostore.service``) and the memory facade: it adds no storage
of its own, so what a framework writes is what the full API, the CLI and the HTTP service see. Importing this
package imports no framework; importing a subpackage needs its extra (``pip install 'mnemostore[langchain]'``).
"""
