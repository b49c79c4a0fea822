# The Rubin-like campaign, small: 2 visits x 3 detectors, 1 patch (3,041 nodes by default)
idds dag launch examples/dag/rubin/pipeline.yaml --set visits=2 --set detectors=3 \
  --set patches=1 --no-progress
idds dag list                                    # workflows: state, nodes by state
idds dag show rubin-campaign --png rubin.png     # every node; the graph drawn by graphviz
idds dag logs rubin-campaign catalog             # a node's stdout and stderr
