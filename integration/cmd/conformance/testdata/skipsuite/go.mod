module skipsuite

go 1.22
