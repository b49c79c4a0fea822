idds carousel simulate examples/carousel/small.yaml   # each policy on a simulated clock
idds carousel plan examples/carousel/small.yaml --buffer 100GB,200GB,400GB,unbounded
idds carousel run examples/carousel/small.yaml --files 12 --speedup 20000   # live, on Ray
