"""``nstjax serve``: a local web studio that shows the picture as it forms.

A Starlette application (:mod:`nstjax.serve.app`) over the library: the page chooses the
images and the options (:mod:`nstjax.serve.settings` turns its form into the library's
:class:`~nstjax.Objective`, :func:`~nstjax.loss_weights` and :class:`~nstjax.Solver`,
whose messages are shown beside the fields), one run at a time computes in a worker
thread (:mod:`nstjax.serve.jobs`), and its progress, live images and sweep members reach
every open page as server-sent events (:mod:`nstjax.serve.events`).  Files are only read
from and written to the folders the server was given (:mod:`nstjax.serve.uploads`);
results are written as the command line writes them (:mod:`nstjax.serve.records`).
"""
